"""The stage-2 model: diffusers' UNet2DConditionModel over VAE latents [z, n_mels/f, frames/f],
cross-attending to text token states; plus the noise schedule (a diffusers scheduler config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from utils.errors import UserError


@dataclass(frozen=True)
class UNetConfig:
    block_out_channels: list[int]  # Amphion: model_channels 256 x channel_mult [1, 2, 4]
    layers_per_block: int
    attention_levels: list[bool]  # cross-attention at each resolution level
    attention_head_dim: int  # channels per attention head
    cross_attention_dim: int  # must equal the text encoder's hidden size
    norm_num_groups: int
    gradient_checkpointing: bool
    # also add the masked-mean text embedding to the timestep embedding (a global FiLM-style condition, as
    # AudioLDM does with its CLAP embedding); cross-attention alone learns clip-wide attributes slowly
    pooled_text: bool = False
    # NHWC weights and inputs while training: one U-Net step 13% faster at Amphion's size on CPU (bench/)
    channels_last: bool = False

    def __post_init__(self) -> None:
        if len(self.attention_levels) != len(self.block_out_channels):
            raise ValueError(
                f"unet.attention_levels has {len(self.attention_levels)} entries, block_out_channels {len(self.block_out_channels)}"
            )
        if not any(self.attention_levels) and not self.pooled_text:
            raise ValueError("unet has no text input: set a true in unet.attention_levels or unet.pooled_text: true")


def build_unet(cfg: UNetConfig, latent_channels: int) -> UNet2DConditionModel:
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention_levels))
    unet = UNet2DConditionModel(
        in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=down, up_block_types=up, block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block, cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim, norm_num_groups=cfg.norm_num_groups,
        mid_block_type="UNetMidBlock2DCrossAttn" if any(cfg.attention_levels) else None,
        class_embed_type="projection" if cfg.pooled_text else None,
        projection_class_embeddings_input_dim=cfg.cross_attention_dim if cfg.pooled_text else None,
    )
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if cfg.channels_last:
        unet.to(memory_format=torch.channels_last)
    return unet


def text_condition(unet: UNet2DConditionModel, emb: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The U-Net's text keyword arguments: token states for cross-attention, plus their masked mean when the
    U-Net was built with `pooled_text`. The one place both training and sampling build the condition."""
    emb = emb.to(unet.dtype)
    kwargs = {"encoder_hidden_states": emb, "encoder_attention_mask": mask}
    if unet.config.class_embed_type == "projection":
        weight = mask.unsqueeze(-1).to(emb.dtype)
        kwargs["class_labels"] = (emb * weight).sum(1) / weight.sum(1).clamp(min=1)
    return kwargs


def check_context_dim(unet: UNet2DConditionModel, text_dim: int, text_name: str) -> None:
    if unet.config.cross_attention_dim != text_dim:
        raise UserError(
            f"unet.cross_attention_dim={unet.config.cross_attention_dim} but text encoder '{text_name}' "
            f"outputs {text_dim}-dim states; set unet.cross_attention_dim={text_dim}"
        )


def unet_stride(unet: UNet2DConditionModel) -> int:
    """Latent frames must divide by this (the U-Net's total down-sampling)."""
    return 2 ** (len(unet.config.block_out_channels) - 1)


def build_noise_scheduler(kwargs: dict[str, Any]) -> SchedulerMixin:
    try:
        return DDPMScheduler(**kwargs)
    except TypeError as err:
        raise UserError(f"noise_scheduler: {err}") from None


def velocity_or_noise(scheduler: SchedulerMixin, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The regression target for the configured prediction_type."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, t)
    raise UserError(f"noise_scheduler.prediction_type={kind!r}: use 'epsilon' or 'v_prediction'")
