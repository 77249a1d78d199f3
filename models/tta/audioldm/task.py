"""AudioLDM training task: frozen VAE -> scaled latents -> add noise -> text-conditioned U-Net -> MSE.

The VAE (and its audio contract) come from the stage-1 export named by `autoencoder_path`. Latents may
be cached once per clip (posterior mean and std, keyed by a hash of the VAE weights); training then
samples z = mean + std * eps with the step's generator, exactly as the on-the-fly path does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.training_utils import compute_snr
from tqdm import tqdm

from models.base.loading import load_part
from models.base.task import Task
from models.tta.artifact import read_artifact, weights_fingerprint
from models.tta.audioldm.lora import add_lora, save_adapter
from models.tta.audioldm.model import (
    SCHEDULE_KEYS, UNetConfig, build_noise_scheduler, build_unet, load_unet, check_context_dim, text_condition, velocity_or_noise,
)
from models.tta.audioldm.text_encoder import TextEncoder, TextEncoderConfig, join
from models.tta.audioldm.pipeline import HOW_TO_TRAIN, STAGE as EXPORT_STAGE, TTAPipeline, sampler_defaults, save_export
from models.tta.autoencoderkl.model import load_vae_export, mel_to_image
from models.tta.data import MelDataset, collate, mel_splits
from utils.errors import UserError
from utils.io import atomic_path
from utils.log import get_logger
from utils.mel import MelConfig
from utils.schema import BaseConfig

log = get_logger("audioldm")
SAMPLER_KEYS = ("name", "num_steps", "guidance_scale")


@dataclass(frozen=True)
class DiffusionConfig:
    autoencoder_path: str  # the stage-1 export (ckpts/tta/<vae exp> or its export/ folder); unused with init_from
    # fine-tuning: a stage-2 export (ours or a converted published model) whose U-Net, VAE, text encoder,
    # noise schedule and sampler defaults replace the config's; the `unet` section then only sets the
    # training switches (gradient_checkpointing, channels_last)
    init_from: str | None
    cache_latents: bool
    cfg_dropout: float  # probability of replacing a caption by the null prompt
    min_snr_gamma: float  # 0 disables min-SNR loss weighting
    noise_scheduler: dict[str, Any]  # diffusers DDPMScheduler kwargs
    sampler: dict[str, Any]  # inference defaults: name, num_steps, guidance_scale
    valid_samples: int  # prompts sampled for TensorBoard at the end / every sample_every
    # training only: probability of masking each token of a kept caption out of the text condition (a caption
    # that would lose every token keeps them all), so the U-Net cannot lean on one word (docs/RESULTS.md, "Time")
    token_dropout: float = field(default=0.0, kw_only=True)
    # training only: add this much noise that is constant over each latent frame's frequency bins (per channel),
    # offset noise (Guttenberg 2023) along time, so that at high noise levels a frame's overall level is uncertain
    # and the model learns to set it (docs/RESULTS.md, "Offset noise along time")
    frame_offset_noise: float = field(default=0.0, kw_only=True)
    # training only: add Gaussian noise of this many times each caption's token-state RMS to its text states
    # (conditioning augmentation, as StackGAN's), meant to make the U-Net answer a neighbourhood of each training
    # caption's states rather than its exact words; on the demo it did not carry unseen pulse wordings, and 1.0
    # lowered every attribute (docs/RESULTS.md, "Noisy text states")
    text_noise: float = field(default=0.0, kw_only=True)
    sampler_keys: ClassVar[tuple[str, ...]] = SAMPLER_KEYS

    def __post_init__(self) -> None:
        if not 0 <= self.token_dropout < 1:
            raise ValueError(f"model.token_dropout={self.token_dropout}: use a probability in [0, 1)")
        if self.frame_offset_noise < 0:
            raise ValueError(f"model.frame_offset_noise={self.frame_offset_noise}: use 0 (off) or a positive scale")
        if self.text_noise < 0:
            raise ValueError(f"model.text_noise={self.text_noise}: use 0 (off) or a positive scale")
        unknown = sorted(set(self.sampler) - set(self.sampler_keys))
        if unknown:
            raise ValueError(f"model.sampler: unknown key(s) {unknown}; valid keys: {', '.join(self.sampler_keys)}")
        unknown = sorted(set(self.noise_scheduler) - SCHEDULE_KEYS)
        if unknown:
            raise ValueError(f"model.noise_scheduler: unknown key(s) {unknown}; valid keys: {', '.join(sorted(SCHEDULE_KEYS))}")
        ns = self.noise_scheduler
        if self.min_snr_gamma > 0 and ns.get("rescale_betas_zero_snr") and ns.get("prediction_type", "epsilon") == "epsilon":
            raise ValueError(
                "model.min_snr_gamma > 0 with epsilon prediction and rescale_betas_zero_snr: the last timestep has SNR 0, "
                "so the epsilon weight min(snr, gamma) / snr is 0/0; use prediction_type 'v_prediction' or min_snr_gamma 0"
            )


@dataclass(frozen=True)
class AudioLDMConfig(BaseConfig):
    model: DiffusionConfig
    unet: UNetConfig
    text_encoder: TextEncoderConfig


def check_same_audio(found: MelConfig, wanted: MelConfig, source: str) -> None:
    if found != wanted:
        raise UserError(f"{source} was made with other audio settings ({wanted.differences(found.__dict__)}); "
                        "use its `audio` block (--set audio.<key>=<value>)")


def fresh(mel: Path, latent: Path) -> bool:
    """A cached latent is valid while it is newer than its mel (re-preparing a clip rewrites the mel)."""
    return latent.exists() and latent.stat().st_mtime_ns >= mel.stat().st_mtime_ns


class LatentDataset(MelDataset):
    """MelDataset whose items carry cached posterior params [2, z, h, w] (mean, std) instead of mels; rows of an
    edit triplet (with a `Source` clip) also carry the source clip's as `source_posterior`."""

    def __init__(self, *args, latent_dir: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.latent_dir = latent_dir

    def latent_path(self, i: int, uid: str) -> Path:
        return self.mel_paths[i].parent.parent / self.latent_dir / f"{uid}.npy"

    def __getitem__(self, index: int) -> dict:
        i = index % len(self.rows)
        row = self.rows[i]
        item = {"posterior": torch.from_numpy(np.load(self.latent_path(i, row["Uid"]))), "caption": row["Caption"], "uid": row["Uid"], "row": row}
        if "Source" in row:
            item["source_posterior"] = torch.from_numpy(np.load(self.latent_path(i, row["Source"])))
        return item


def collate_any(items: list[dict]) -> dict:
    if "posterior" in items[0]:
        tensors = [k for k in ("posterior", "source_posterior") if k in items[0]]
        return {**{k: torch.stack([it[k] for it in items]) for k in tensors}, **{k: [it[k] for it in items] for k in ("caption", "uid", "row")}}
    return collate(items)


class AudioLDMTask(Task):
    Config = AudioLDMConfig
    cfg: AudioLDMConfig
    ema_module = "unet"
    supports_lora = True
    collate_fn = staticmethod(collate_any)

    def __init__(self, cfg: AudioLDMConfig, accelerator) -> None:
        m = cfg.model
        self.init: dict | None = None  # the artifact of model.init_from (fine-tuning)
        if cfg.train.lora and not m.init_from:
            raise UserError("train.lora trains adapters on an existing model: set --init_from to a stage-2 export")
        if m.init_from:
            self.init, audio = read_artifact(m.init_from, EXPORT_STAGE, HOW_TO_TRAIN)
            self.vae = load_part("VAE", AutoencoderKL.from_pretrained, Path(self.init["dir"]) / "vae")
            self.vae_meta = {"dir": self.init["dir"]}
            check_same_audio(audio, cfg.audio, f"--init_from {m.init_from}")
        else:
            self.vae, audio, self.vae_meta = load_vae_export(m.autoencoder_path)
            check_same_audio(audio, cfg.audio, f"the VAE at {m.autoencoder_path}")
        super().__init__(cfg, accelerator)
        self.vae.requires_grad_(False).eval().to(accelerator.device)
        self.scale = float(self.vae.config.scaling_factor)
        self.schedule = dict(self.init["noise_scheduler"]) if self.init else dict(m.noise_scheduler)
        self.sampler = dict(self.init["sampler"]) if self.init else sampler_defaults(m.sampler)

    def build(self):
        unet = self.build_unet()
        check_context_dim(unet, self.text.hidden_size, self.text.cfg.name_or_path, self.text.cfg.output)
        self.noise_scheduler = build_noise_scheduler(self.schedule)
        self.modules = {"unet": unet}
        self.optimizers = {"unet": self.adam(unet, lr_scales=self.unet_lr_scales())}
        if self.text.cfg.trainable:
            self.modules["text"] = self.text.model
            self.optimizers["text"] = self.adam(self.text.model)
        return self.modules, self.optimizers

    def unet_lr_scales(self) -> dict[str, float]:
        """Learning-rate multiples for U-Net parameters by name prefix (none: one rate for all)."""
        return {}

    def build_unet(self):
        """The text encoder (as self.text) and the U-Net to train: the export's when fine-tuning, else a new one."""
        if self.init:  # fine-tuning: the export's own text encoder (frozen unless configured) and U-Net
            root = Path(self.init["dir"])
            text_cfg = TextEncoderConfig(**{**self.init["text_encoder"], "name_or_path": str(root / "text_encoder"),
                                            "trainable": self.cfg.text_encoder.trainable})
            self.text = TextEncoder(text_cfg).to(self.accelerator.device)
            unet = load_unet(root / "unet", self.cfg.unet)
            if self.cfg.train.lora:
                add_lora(unet, self.cfg.train.lora)
        else:
            self.text = TextEncoder(self.cfg.text_encoder).to(self.accelerator.device)
            projected = self.text.cfg.output == "projected"  # AudioLDM's global text vector
            unet = build_unet(self.cfg.unet, self.vae.config.latent_channels, self.text.hidden_size if projected else None)
        return unet

    # ---- data ----------------------------------------------------------------------------------
    def datasets(self):
        if not self.cfg.model.cache_latents:
            return mel_splits(self.cfg)
        d = self.cfg.data
        # one cache folder per VAE (hash of its weights); a latent in it is redone when its mel is newer
        latent_dir = f"latent_{weights_fingerprint(Path(self.vae_meta['dir']) / 'vae')}"
        self.build_latent_cache(latent_dir)
        make = lambda split, balance_by=None: LatentDataset(  # noqa: E731
            d.processed_dir, d.datasets, split, self.cfg.audio, seed=self.cfg.seed, balance_by=balance_by, latent_dir=latent_dir)
        return make(d.train_split, d.balance_by), make(d.valid_split)  # validation: every row once

    @torch.no_grad()
    def posterior(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, T] -> posterior params [B, 2, z, T / f, n_mels / f] (mean, std) of the frozen VAE."""
        dist = self.vae.encode(mel_to_image(mel).to(self.accelerator.device)).latent_dist
        return torch.stack([dist.mean, dist.std], dim=1)

    def build_latent_cache(self, latent_dir: str) -> None:
        """Encode every clip of the train/valid splits once (main process; the others wait): each row's clip,
        and an edit triplet's source clip too."""
        d = self.cfg.data
        if self.accelerator.is_main_process:
            for split in (d.train_split, d.valid_split):
                ds = MelDataset(d.processed_dir, d.datasets, split, self.cfg.audio)
                mels = {p: p for p in ds.mel_paths}
                mels |= {p.parent / f"{row['Source']}.npy": p for row, p in zip(ds.rows, ds.mel_paths) if "Source" in row}
                todo = [m for m in mels if not fresh(m, m.parent.parent / latent_dir / m.name)]
                for chunk in tqdm([todo[k : k + 16] for k in range(0, len(todo), 16)], desc=f"cache latents ({split})", unit="batch"):
                    post = self.posterior(torch.stack([torch.from_numpy(ds.read_mel(m)) for m in chunk])).cpu().numpy()
                    for m, p in zip(chunk, post):
                        with atomic_path(m.parent.parent / latent_dir / m.name, suffix=".npy") as tmp:
                            np.save(tmp, p.astype(np.float32))
        self.accelerator.wait_for_everyone()

    def latents(self, batch: dict, gen: torch.Generator) -> torch.Tensor:
        """Scaled z = (mean + std * eps) * scale, from the cache or from the VAE; eps from `gen`."""
        post = batch["posterior"] if "posterior" in batch else self.posterior(batch["mel"])
        post = post.to(self.accelerator.device)
        eps = torch.randn(post[:, 0].shape, generator=gen).to(post.device)
        return (post[:, 0] + post[:, 1] * eps) * self.scale

    def condition(self, captions: list[str], gen: torch.Generator, dropout: float,
                  token_dropout: float = 0.0, text_noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Text states with each caption replaced by the null prompt with probability `dropout` (CFG), each
        token of the others masked out with probability `token_dropout`, and noise of `text_noise` times
        each caption's state RMS added to them (the null prompt's states stay exact)."""
        drop = torch.rand(len(captions), generator=gen) < dropout
        trained = self.modules.get("text")  # the prepared (data-parallel) text encoder when it trains
        emb, mask = self.text.encode(captions, trained)
        if text_noise > 0:
            mean_square = (emb.pow(2).mean(-1) * mask).sum(1) / mask.sum(1)  # [B], over each caption's real tokens
            noise = torch.randn(emb.shape, generator=gen).to(emb)
            emb = emb + text_noise * mean_square.sqrt().view(-1, 1, 1) * noise
        if token_dropout > 0:
            kept = mask & (torch.rand(mask.shape, generator=gen) >= token_dropout).to(mask.device)
            mask = torch.where(kept.any(1, keepdim=True), kept, mask)  # a caption that lost every token keeps all
        if drop.any():
            null_emb, null_mask = self.text.null(int(drop.sum()), trained)
            emb, mask = join((emb, mask), (null_emb, null_mask))  # rows: all B captions, then the nulls
            idx = torch.arange(len(captions))
            idx[drop] = len(captions) + torch.arange(int(drop.sum()))  # a dropped row takes a null row
            emb, mask = emb[idx.to(emb.device)], mask[idx.to(mask.device)]
        return emb, mask

    # ---- steps ---------------------------------------------------------------------------------
    def diffusion_loss(self, batch: dict, gen: torch.Generator, training: bool) -> torch.Tensor:
        """The denoising objective. Training applies `model`'s regularisers (CFG dropout, token dropout, text
        noise, offset noise along time); validation scores the plain objective, so its loss is comparable across configs."""
        unet, sched, m = self.modules["unet"], self.noise_scheduler, self.cfg.model
        dropout, token_dropout, text_noise, frame_offset_noise = (
            (m.cfg_dropout, m.token_dropout, m.text_noise, m.frame_offset_noise) if training else (0.0, 0.0, 0.0, 0.0))
        # 1. z0 ~ q(z|x), scaled to unit variance
        z0 = self.latents(batch, gen)
        # 2. text condition with CFG dropout
        emb, mask = self.condition(batch["caption"], gen, dropout, token_dropout, text_noise)
        # 3. forward process: z_t = sqrt(a_t) z0 + sqrt(1 - a_t) eps, t ~ U{0..T-1}
        noise = torch.randn(z0.shape, generator=gen).to(z0.device)
        if frame_offset_noise > 0:  # latents are [B, C, T', F']: one draw per channel and frame
            noise = noise + frame_offset_noise * torch.randn((*z0.shape[:3], 1), generator=gen).to(z0.device)
        t = torch.randint(0, sched.config.num_train_timesteps, (z0.shape[0],), generator=gen).to(z0.device)
        zt = self.unet_input(sched.add_noise(z0, noise, t), batch, gen)
        if self.cfg.unet.channels_last:
            zt = zt.contiguous(memory_format=torch.channels_last)
        # 4. predict eps (or v) and regress, optionally min-SNR weighted (Hang et al. 2023)
        pred = unet(zt, t, **text_condition(self.unwrap("unet"), emb, mask)).sample  # config and dtype: the bare model
        target = velocity_or_noise(sched, z0, noise, t)
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        gamma = m.min_snr_gamma
        if gamma > 0:
            snr = compute_snr(sched, t)
            weight = torch.clamp(snr, max=gamma) / (snr + 1 if sched.config.prediction_type == "v_prediction" else snr)
            per_sample = per_sample * weight
        return per_sample.mean()

    def unet_input(self, zt: torch.Tensor, batch: dict, gen: torch.Generator) -> torch.Tensor:
        """What the U-Net reads besides time and text: the noisy latents (an editor adds its source's)."""
        return zt

    def train_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        loss = self.diffusion_loss(batch, self.step_generator(step), training=True)
        self.optim_step(tuple(self.optimizers), loss)  # the U-Net, plus the text encoder when trainable
        return {"loss": loss.detach()}

    def valid_step(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"loss": self.diffusion_loss(batch, generator, training=False)}

    def log_samples(self, batch: dict, writer, step: int) -> None:
        from utils.plot import mel_figure  # matplotlib: only when samples are logged

        n = self.cfg.model.valid_samples
        if n <= 0:
            return
        pipe = TTAPipeline(self.vae, self.unwrap("unet"), self.text, self.schedule, self.cfg.audio)
        out = pipe(batch["caption"][:n], seed=self.cfg.seed, **self.sampler)
        writer.add_figure("samples/mel", mel_figure([m.cpu().numpy() for m in out.mel], batch["caption"][:n]), step)
        for i, wav in enumerate(out.wav):
            writer.add_audio(f"samples/audio_{i}", wav.clamp(-1, 1), step, sample_rate=self.cfg.audio.sample_rate)

    # ---- export --------------------------------------------------------------------------------
    def export(self, out_dir: Path, resolved_config: dict) -> None:
        """A stage-2 export; for a LoRA run the adapter alone, tied to the export it was trained on."""
        if self.cfg.train.lora:
            save_adapter(self.unwrap("unet"), out_dir, self.cfg.train.lora, Path(self.init["dir"]), self.cfg.audio, resolved_config)
            return
        save_export(
            out_dir, vae=self.vae, unet=self.unwrap("unet"), text_model=self.text.model, tokenizer=self.text.tokenizer,
            text_config=self.text.cfg.__dict__, noise_scheduler=self.schedule, sampler=self.sampler, audio=self.cfg.audio,
            config=resolved_config, vae_artifact=self.vae_meta["dir"],
        )
