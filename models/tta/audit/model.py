"""The editor's U-Net: the text-to-audio U-Net with the source clip's latent as extra input channels.

The new channels' input weights start at zero, so at step 0 the editor computes exactly what the text-to-audio
model does and fine-tuning only has to learn to use the source (InstructPix2Pix, Brooks et al. 2023, sec. 3.2;
diffusers' instruct_pix2pix training example widens `conv_in` by hand the same way: no library helper exists).
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from utils.errors import UserError


def is_editor(unet: UNet2DConditionModel) -> bool:
    """An editor U-Net reads [noisy latent | source latent]: twice the channels it predicts."""
    return unet.config.in_channels == 2 * unet.config.out_channels


def editor_unet(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """A new U-Net with `unet`'s weights whose extra `conv_in` input channels (the source latent) are zero."""
    if is_editor(unet):
        raise UserError("the U-Net already takes a source latent (it is an editor); start from a text-to-audio export")
    editor = UNet2DConditionModel.from_config({**unet.config, "in_channels": 2 * unet.config.in_channels})
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, torch.zeros_like(weight)], dim=1)
    editor.load_state_dict(state)
    if unet.is_gradient_checkpointing:
        editor.enable_gradient_checkpointing()
    return editor.to(unet.device, unet.dtype)
