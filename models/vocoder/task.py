"""HiFi-GAN vocoder training: mel L1 (x45) + feature matching (x2) + LSGAN, MPD + MSD discriminators.

Trains on random waveform segments of the prepared `wav/` clips; the input mel of each segment comes from
the shared front-end, so the vocoder inverts exactly the mels the other stages produce. The generator is
transformers' SpeechT5HifiGan (AudioLDM's vocoder layout) and is exported in that format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from models.base.task import Task
from models.tta.artifact import write_artifact
from models.tta.data import MelDataset, mel_splits
from models.vocoder.hifigan import HiFiGANConfig, build_generator, fit_length
from modules.gan_losses import gan_active, lsgan_d_loss, lsgan_g_loss
from modules.hifigan_discriminators import HiFiGANDiscriminator, feature_matching_loss
from utils.audio import load_audio
from utils.errors import UserError
from utils.mel import MelFrontEnd, normalize_waveform
from utils.schema import BaseConfig

STAGE = "hifigan"


@dataclass(frozen=True)
class VocoderLossConfig:
    weights: dict[str, float]  # {"mel": 45, "fm": 2, "adv": 1}
    disc_start: int
    disc_channels: int
    disc_learning_rate: float


@dataclass(frozen=True)
class HiFiGANTrainConfig(BaseConfig):
    model: HiFiGANConfig
    loss: VocoderLossConfig
    segment_frames: int  # training segment length in mel frames


class WavSegments(Dataset):
    """Random segments of `segment_frames * hop` samples from the prepared clips (seeded by epoch and index),
    at the level the mel front-end analyses them (normalised per clip when audio.normalize_wav is on)."""

    def __init__(self, base: MelDataset, segment_samples: int, seed: int) -> None:
        self.wavs = list(dict.fromkeys(p.parent.parent / "wav" / f"{p.stem}.wav" for p in base.mel_paths))
        self.sr, self.n, self.seed = base.mel_cfg.sample_rate, segment_samples, seed
        self.normalize = base.mel_cfg.normalize_wav

    def __len__(self) -> int:
        return len(self.wavs)

    def __getitem__(self, index: int) -> dict:
        epoch, i = divmod(index, len(self.wavs))
        wav = load_audio(self.wavs[i], self.sr)
        if self.normalize:  # the whole clip, as preparation does before its mel: segments keep the clip's level
            wav = normalize_waveform(torch.from_numpy(wav)).numpy()
        start = int(np.random.default_rng((self.seed, epoch, i)).integers(0, max(1, len(wav) - self.n)))
        seg = np.pad(wav[start : start + self.n], (0, max(0, self.n - len(wav[start:]))))
        return {"wav": torch.from_numpy(seg), "uid": self.wavs[i].stem}


def collate_wavs(items: list[dict]) -> dict:
    return {"wav": torch.stack([it["wav"] for it in items]), "uid": [it["uid"] for it in items]}


class HiFiGANTask(Task):
    Config = HiFiGANTrainConfig
    cfg: HiFiGANTrainConfig
    ema_module = None
    collate_fn = staticmethod(collate_wavs)

    def build(self):
        gen = build_generator(self.cfg.model, self.cfg.audio)
        disc = HiFiGANDiscriminator(self.cfg.loss.disc_channels)
        self.front = MelFrontEnd(self.cfg.audio).to(self.accelerator.device)
        self.modules = {"g": gen, "d": disc}
        self.optimizers = {"g": self.adam(gen), "d": self.adam(disc, self.cfg.loss.disc_learning_rate)}
        return self.modules, self.optimizers

    def datasets(self):
        if self.cfg.data.balance_by:  # WavSegments takes each clip once: repeated rows would be dropped unseen
            raise UserError("data.balance_by: the vocoder trains on every clip's audio once per epoch and does not "
                            "balance rows; set data.balance_by: null")
        mel_train, mel_valid = mel_splits(self.cfg)
        n = self.cfg.segment_frames * self.cfg.audio.hop_length
        return WavSegments(mel_train, n, self.cfg.seed), WavSegments(mel_valid, n, self.cfg.seed)

    def input_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, n_mels, N / hop]: exactly the features the VAE produces at inference (the generator's input).
        No re-normalisation, so targets keep their level."""
        return self.front(wav, normalize=False)[..., : wav.shape[-1] // self.cfg.audio.hop_length]

    def loss_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """As input_mel with a soft floor: a freshly initialised generator's near-silent output still gets a gradient."""
        return self.front(wav, normalize=False, soft_floor=True)[..., : wav.shape[-1] // self.cfg.audio.hop_length]

    def _generate(self, wav: torch.Tensor) -> torch.Tensor:
        fake = self.modules["g"](self.input_mel(wav).transpose(1, 2))  # SpeechT5HifiGan takes [B, frames, n_mels]
        return fit_length(fake, wav.shape[-1])

    def train_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        w = self.cfg.loss.weights
        real = batch["wav"]
        fake = self._generate(real)
        gan_on = gan_active(step, self.cfg.loss.disc_start)
        out = {}
        # 1. discriminators: LSGAN on (real, detached fake)
        if gan_on:
            real_logits, _ = self.modules["d"](real.unsqueeze(1))
            fake_logits, _ = self.modules["d"](fake.detach().unsqueeze(1))
            d_loss = sum(lsgan_d_loss(r, f) for r, f in zip(real_logits, fake_logits))
            self.optim_step("d", d_loss)
            out["d_loss"] = d_loss.detach()
        # 2. generator: mel L1 + feature matching + adversarial
        terms = {"mel": F.l1_loss(self.loss_mel(fake), self.loss_mel(real))}
        if gan_on:
            disc = self.unwrap("d")
            disc.requires_grad_(False)  # G's step must leave D's gradients alone
            fake_logits, fake_feats = disc(fake.unsqueeze(1))
            with torch.no_grad():
                _, real_feats = disc(real.unsqueeze(1))
            disc.requires_grad_(True)
            terms["fm"] = feature_matching_loss(real_feats, fake_feats)
            terms["adv"] = sum(lsgan_g_loss(f) for f in fake_logits)
        loss = sum(w.get(k, 0.0) * v for k, v in terms.items())
        self.optim_step("g", loss)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}, **out}

    def valid_step(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"loss": F.l1_loss(self.loss_mel(self._generate(batch["wav"])), self.loss_mel(batch["wav"]))}

    def log_samples(self, batch: dict, writer, step: int) -> None:
        from utils.plot import mel_figure  # matplotlib: only when samples are logged

        real = batch["wav"][:1]
        fake = self._generate(real)
        mels = [self.input_mel(real)[0].cpu().numpy(), self.input_mel(fake)[0].cpu().numpy()]
        writer.add_figure("mel/input_vs_vocoded", mel_figure(mels, ["input", "vocoded"]), step)
        writer.add_audio("audio/vocoded", fake[0].clamp(-1, 1).cpu(), step, sample_rate=self.cfg.audio.sample_rate)

    def export(self, out_dir: Path, resolved_config: dict) -> None:
        self.unwrap("g").save_pretrained(str(out_dir / "vocoder"), safe_serialization=True)
        write_artifact(out_dir, STAGE, resolved_config, self.cfg.audio)
