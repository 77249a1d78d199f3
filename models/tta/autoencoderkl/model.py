"""The stage-1 model: diffusers' AutoencoderKL over a log-mel treated as a 1-channel image [B, 1, T, n_mels].

Time runs along the image height and mel bins along its width, AudioLDM's orientation: its published VAE,
U-Net and vocoder (and Tango's) work on `[B, 1, T, n_mels]` images and `[B, C, T / f, n_mels / f]` latents,
so ours do too. Stored mels stay `[n_mels, T]`; `mel_to_image` / `image_to_mel` are the only transposes.

Both Amphion's (block_out_channels [128,128,256,256,512], 4 latent channels) and AudioLDM's
([128,256,512], 8 latent channels, 4x per axis) architectures are plain configs of this class. Note that
diffusers always uses a double-z encoder (mean and log-variance), as both references do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import nn

from models.base.loading import load_part
from models.tta.artifact import ARTIFACT_FILE, read_artifact
from utils.errors import UserError
from utils.mel import MelConfig

STAGE = "autoencoderkl"
HOW_TO_TRAIN = "sh egs/tta/autoencoderkl/run_train.sh"


@dataclass(frozen=True)
class VAEModelConfig:
    block_out_channels: list[int]
    layers_per_block: int
    latent_channels: int
    norm_num_groups: int
    mid_block_add_attention: bool
    pretrained_path: str | None  # a diffusers AutoencoderKL folder to start from (e.g. AudioLDM's vae/)
    scale_batches: int  # training batches used to measure the latent std at export
    # train on random crops of this many mel frames (null: whole clips). A VAE without mid-block attention is
    # fully convolutional, so crops teach it the same local mapping; half-length crops halve the step
    # (bench/run_all.py --cases vae). Validation, the latent std and every later stage use whole clips.
    train_crop_frames: int | None


def build_vae(cfg: VAEModelConfig) -> AutoencoderKL:
    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=1, out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels, norm_num_groups=cfg.norm_num_groups,
        mid_block_add_attention=cfg.mid_block_add_attention, scaling_factor=1.0,
    )


class MelVAE(nn.Module):
    """Training wrapper: forward = encode -> sample -> decode, so a data-parallel wrapper syncs its gradients
    (DDP only hooks `forward`, not diffusers' `encode`/`decode`). Exports save the inner `vae`."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True):
        posterior = self.vae.encode(x).latent_dist
        z = posterior.sample(generator=generator) if sample else posterior.mode()
        return self.vae.decode(z).sample, posterior


def mel_to_image(mel: torch.Tensor) -> torch.Tensor:
    """log-mel [B, n_mels, T] -> VAE image [B, 1, T, n_mels] (AudioLDM's orientation)."""
    return mel.transpose(-1, -2).unsqueeze(1)


def image_to_mel(image: torch.Tensor) -> torch.Tensor:
    """VAE image [B, 1, T, n_mels] -> log-mel [B, n_mels, T]."""
    return image[:, 0].transpose(-1, -2)


def downsample_factor(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def latent_shape(vae: AutoencoderKL, mel_cfg: MelConfig, frames: int | None = None) -> tuple[int, int, int]:
    """(channels, latent frames, latent mel bins) of a clip of `frames` mel frames."""
    f = downsample_factor(vae)
    return vae.config.latent_channels, (frames or mel_cfg.target_frames) // f, mel_cfg.n_mels // f


def check_vae(vae: AutoencoderKL, mel_cfg: MelConfig, where: str) -> None:
    """A VAE must take 1-channel mels whose both axes divide by its down-sampling factor."""
    f = downsample_factor(vae)
    if vae.config.in_channels != 1 or vae.config.out_channels != 1:
        raise UserError(f"{where}: VAE has {vae.config.in_channels} input channels; a mel VAE needs 1")
    if mel_cfg.n_mels % f or mel_cfg.target_frames % f:
        raise UserError(
            f"{where}: audio.n_mels={mel_cfg.n_mels} and audio.target_frames={mel_cfg.target_frames} "
            f"must both divide by the VAE's down-sampling factor {f}"
        )


def check_train_crop(cfg: VAEModelConfig, vae: AutoencoderKL, mel_cfg: MelConfig) -> None:
    """Crops must keep the down-sampling exact and be shorter than the clips they are cut from."""
    crop, f = cfg.train_crop_frames, downsample_factor(vae)
    if crop is not None and (crop <= 0 or crop % f or crop > mel_cfg.target_frames):
        raise UserError(
            f"model.train_crop_frames={crop} must be a positive multiple of the VAE's down-sampling factor {f} "
            f"and at most audio.target_frames={mel_cfg.target_frames} (or null for whole clips)"
        )


def load_pretrained_vae(path: str | Path, mel_cfg: MelConfig) -> AutoencoderKL:
    """A diffusers-format AutoencoderKL folder (config.json + weights), or a stage-1 export (ours, or a published
    VAE converted with bins/tta/convert.py --only vae), checked against the mel settings."""
    path = Path(path)
    if any((p / ARTIFACT_FILE).is_file() for p in (path, path / "export")):
        vae = load_vae_export(path)[0]
    elif (path / "config.json").is_file():
        vae = load_part("VAE", AutoencoderKL.from_pretrained, path)
    else:
        raise UserError(f"{path} is neither a diffusers AutoencoderKL folder (no config.json) nor a VAE export")
    check_vae(vae, mel_cfg, str(path))
    return vae


def load_vae_export(path: str | Path) -> tuple[AutoencoderKL, MelConfig, dict]:
    """The stage-1 export (`<exp>/export` or the experiment folder): VAE, its audio contract, artifact meta."""
    meta, mel_cfg = read_artifact(path, STAGE, HOW_TO_TRAIN)
    vae = load_part("VAE", AutoencoderKL.from_pretrained, Path(meta["dir"]) / "vae")
    return vae, mel_cfg, meta
