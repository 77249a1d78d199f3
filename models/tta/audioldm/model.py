"""The stage-2 model: diffusers' UNet2DConditionModel over VAE latents [z, frames/f, n_mels/f], plus the noise
schedule (a diffusers scheduler config).

Two conditioning modes, told apart by the U-Net's own config: cross-attention to text token states (ours,
Tango), optionally plus their masked mean through the timestep embedding (`pooled_text`); or one global text
vector as `class_labels` with no `encoder_hidden_states` (AudioLDM: `class_embed_type="simple_projection"`,
its CLAP embedding).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from models.tta.audioldm.text_encoder import masked_mean
from utils.errors import UserError


@dataclass(frozen=True)
class UNetConfig:
    block_out_channels: list[int]  # Amphion: model_channels 256 x channel_mult [1, 2, 4]
    layers_per_block: int
    attention_levels: list[bool]  # cross-attention at each resolution level
    # heads per attention layer, at every level or one entry per level (the mid block takes the last):
    # diffusers' UNet2DConditionModel reads its `attention_head_dim` argument as the number of heads (its own
    # naming quirk), so channels per head = level channels / this
    attention_head_dim: int | list[int]
    cross_attention_dim: int  # must equal the text encoder's hidden size (unused with a projected text encoder)
    norm_num_groups: int
    gradient_checkpointing: bool
    # also add the masked-mean text embedding to the timestep embedding (a global FiLM-style condition, as
    # AudioLDM does with its CLAP embedding); cross-attention alone learns clip-wide attributes slowly
    pooled_text: bool = False
    # NHWC weights and inputs while training; bench/run_all.py --cases ldm_options measures whether it helps
    channels_last: bool = False

    def __post_init__(self) -> None:
        if len(self.attention_levels) != len(self.block_out_channels):
            raise ValueError(
                f"unet.attention_levels has {len(self.attention_levels)} entries, block_out_channels {len(self.block_out_channels)}"
            )
        heads = self.attention_head_dim
        if isinstance(heads, list) and len(heads) != len(self.block_out_channels):
            raise ValueError(f"unet.attention_head_dim has {len(heads)} entries, block_out_channels {len(self.block_out_channels)}")
        if not any(self.attention_levels) and not self.pooled_text:
            raise ValueError("unet has no text input: set a true in unet.attention_levels or unet.pooled_text: true "
                             "(a projected text encoder conditions every block and needs neither)")


def build_unet(cfg: UNetConfig, latent_channels: int, global_text_dim: int | None = None) -> UNet2DConditionModel:
    """Cross-attention to text token states; or, with `global_text_dim` (a `projected` text encoder), AudioLDM's
    design: the text vector through a linear projection concatenated to the timestep embedding, and the
    attention levels' second attention attending to the image itself."""
    if global_text_dim is not None and cfg.pooled_text:
        raise UserError("unet.pooled_text needs token states; a projected text encoder already gives one global vector")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention_levels))
    if global_text_dim is not None:
        text_kwargs = dict(cross_attention_dim=tuple(cfg.block_out_channels), class_embed_type="simple_projection",
                           projection_class_embeddings_input_dim=global_text_dim, class_embeddings_concat=True)
    else:
        text_kwargs = dict(cross_attention_dim=cfg.cross_attention_dim, class_embed_type="projection" if cfg.pooled_text else None,
                           projection_class_embeddings_input_dim=cfg.cross_attention_dim if cfg.pooled_text else None)
    unet = UNet2DConditionModel(
        in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=down, up_block_types=up, block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block, norm_num_groups=cfg.norm_num_groups,
        mid_block_type="UNetMidBlock2DCrossAttn" if any(cfg.attention_levels) else None, **text_kwargs,
        attention_head_dim=heads if isinstance(heads := cfg.attention_head_dim, int) else tuple(heads),
    )
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if cfg.channels_last:
        unet.to(memory_format=torch.channels_last)
    return unet


def load_unet(path: Path, cfg: UNetConfig) -> UNet2DConditionModel:
    """An exported U-Net to fine-tune: its architecture and weights as saved; the config's training switches."""
    try:
        unet = UNet2DConditionModel.from_pretrained(str(path))
    except (OSError, ValueError, RuntimeError) as err:
        raise UserError(f"{path}: the U-Net could not be loaded (its config does not match its weights, or a file "
                        f"is missing or corrupt): {str(err).splitlines()[0][:200]}") from None
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if cfg.channels_last:
        unet.to(memory_format=torch.channels_last)
    return unet


def global_text_vector(unet: UNet2DConditionModel) -> bool:
    """True for AudioLDM-style U-Nets conditioned only on one text vector (no cross-attention to text)."""
    return unet.config.class_embed_type == "simple_projection"


def text_condition(unet: UNet2DConditionModel, emb: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """The U-Net's text keyword arguments: token states for cross-attention, plus their masked mean when the
    U-Net was built with `pooled_text`; or, for a global-vector U-Net, the single projected text state as
    `class_labels`. The one place both training and sampling build the condition."""
    emb = emb.to(unet.dtype)
    if global_text_vector(unet):  # emb [B, 1, D]: the text encoder's `projected` output
        return {"encoder_hidden_states": None, "class_labels": emb[:, 0]}
    kwargs = {"encoder_hidden_states": emb, "encoder_attention_mask": mask}
    if unet.config.class_embed_type == "projection":
        kwargs["class_labels"] = masked_mean(emb, mask)
    return kwargs


def check_context_dim(unet: UNet2DConditionModel, text_dim: int, text_name: str, text_output: str) -> None:
    """The text encoder must feed the U-Net's conditioning mode with states of the width it expects."""
    if global_text_vector(unet):
        want = unet.config.projection_class_embeddings_input_dim
        if text_output != "projected" or want != text_dim:
            raise UserError(
                f"the U-Net takes one {want}-dim text vector (class_labels), but text encoder '{text_name}' gives "
                f"{text_output} of width {text_dim}; use a projected ({want}-dim) text encoder (text_encoder.output='projected')"
            )
        return
    if text_output == "projected":
        raise UserError(f"text encoder '{text_name}' gives one projected vector, but the U-Net cross-attends to token "
                        "states; set text_encoder.output='tokens'")
    if unet.config.cross_attention_dim != text_dim:
        raise UserError(
            f"unet.cross_attention_dim={unet.config.cross_attention_dim} but text encoder '{text_name}' "
            f"outputs {text_dim}-dim states; set unet.cross_attention_dim={text_dim}"
        )


def unet_stride(unet: UNet2DConditionModel) -> int:
    """Latent frames must divide by this (the U-Net's total down-sampling)."""
    return 2 ** (len(unet.config.block_out_channels) - 1)


# Every setting a published schedule may carry: DDPM's, plus DDIM's `set_alpha_to_one` and PNDM's
# `skip_prk_steps` (AudioLDM ships a DDIM config, Tango reads Stable Diffusion 2.1's PNDM/DDIM one).
SCHEDULE_KEYS = frozenset().union(
    *(inspect.signature(cls.__init__).parameters for cls in (DDPMScheduler, DDIMScheduler, PNDMScheduler))
) - {"self", "kwargs"}


def build_noise_scheduler(kwargs: dict[str, Any]) -> SchedulerMixin:
    """The training-time DDPM schedule; samplers are built from the same settings (pipeline.make_sampler)."""
    unknown = sorted(set(kwargs) - SCHEDULE_KEYS)
    if unknown:
        raise UserError(f"noise_scheduler: unknown setting(s) {unknown}; known settings: {sorted(SCHEDULE_KEYS)}")
    return DDPMScheduler.from_config(kwargs)


def velocity_or_noise(scheduler: SchedulerMixin, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The regression target for the configured prediction_type."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, t)
    raise UserError(f"noise_scheduler.prediction_type={kind!r}: use 'epsilon' or 'v_prediction'")
