"""HiFi-GAN generator: transformers' SpeechT5HifiGan, the layout of AudioLDM's published vocoder.

AudioLDM's `vocoder/` folder (64 mels, 16 kHz, upsample rates multiplying to 160) loads unchanged, and
so do generators we train (`sh egs/tta/hifigan/run_train.sh`), which are saved in the same format.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

import torch
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from models.base.loading import load_part
from utils.errors import UserError
from utils.mel import MelConfig


@dataclass(frozen=True)
class HiFiGANConfig:
    upsample_rates: list[int]  # product must equal audio.hop_length
    upsample_kernel_sizes: list[int]
    upsample_initial_channel: int
    resblock_kernel_sizes: list[int]
    resblock_dilation_sizes: list[list[int]]


def build_generator(cfg: HiFiGANConfig, mel_cfg: MelConfig) -> SpeechT5HifiGan:
    if cfg.upsample_initial_channel < 2 ** len(cfg.upsample_rates):
        raise UserError(f"model.upsample_initial_channel={cfg.upsample_initial_channel} must be at least 2^{len(cfg.upsample_rates)}: each upsampling stage halves it")
    if math.prod(cfg.upsample_rates) != mel_cfg.hop_length:
        raise UserError(f"model.upsample_rates {cfg.upsample_rates} multiply to {math.prod(cfg.upsample_rates)}, not audio.hop_length={mel_cfg.hop_length}")
    config = SpeechT5HifiGanConfig(
        model_in_dim=mel_cfg.n_mels, sampling_rate=mel_cfg.sample_rate, upsample_rates=list(cfg.upsample_rates),
        upsample_kernel_sizes=list(cfg.upsample_kernel_sizes), upsample_initial_channel=cfg.upsample_initial_channel,
        resblock_kernel_sizes=list(cfg.resblock_kernel_sizes), resblock_dilation_sizes=[list(d) for d in cfg.resblock_dilation_sizes],
        normalize_before=False,
    )
    return SpeechT5HifiGan(config)


class HiFiGANVocoder:
    """log-mel [B, n_mels, T] -> waveform [B, T * hop] with a SpeechT5HifiGan generator."""

    def __init__(self, generator: SpeechT5HifiGan) -> None:
        self.generator = generator.eval()

    @torch.no_grad()
    def __call__(self, logmel: torch.Tensor) -> torch.Tensor:
        p = next(self.generator.parameters())
        wav = self.generator(logmel.transpose(1, 2).to(p.device, p.dtype)).float()
        return fit_length(wav, logmel.shape[-1] * math.prod(self.generator.config.upsample_rates))


def fit_length(wav: torch.Tensor, n: int) -> torch.Tensor:
    """Transposed convs with odd (kernel - stride) add a few samples (AudioLDM's layout too): crop/pad to n."""
    return wav[..., :n] if wav.shape[-1] >= n else torch.nn.functional.pad(wav, (0, n - wav.shape[-1]))


def check_generator(gen: SpeechT5HifiGan, mel_cfg: MelConfig, where: str) -> None:
    c = gen.config
    hop = math.prod(c.upsample_rates)
    if c.model_in_dim != mel_cfg.n_mels or c.sampling_rate != mel_cfg.sample_rate or hop != mel_cfg.hop_length:
        raise UserError(
            f"{where}: vocoder takes {c.model_in_dim} mels at {c.sampling_rate} Hz with hop {hop}, but the model "
            f"makes {mel_cfg.n_mels} mels at {mel_cfg.sample_rate} Hz with hop {mel_cfg.hop_length}"
        )


def load_hifigan(path: str | Path, mel_cfg: MelConfig, device: str = "cpu") -> HiFiGANVocoder:
    """A SpeechT5HifiGan folder (AudioLDM's `vocoder/`, or our export's `vocoder/`), or an experiment folder."""
    path = Path(path)
    for cand in (path, path / "vocoder", path / "export" / "vocoder"):
        if (cand / "config.json").is_file() and any((cand / w).is_file() for w in ("model.safetensors", "pytorch_model.bin")):
            gen = load_part("HiFi-GAN", SpeechT5HifiGan.from_pretrained, cand).to(device)
            check_generator(gen, mel_cfg, str(cand))
            return HiFiGANVocoder(gen)
    raise UserError(f"--vocoder_path {path}: no HiFi-GAN folder (config.json) found; train one with sh egs/tta/hifigan/run_train.sh")
