"""Parts every published layout shares: the audio contract, checkpoint reading, and the original-code
(latent-diffusion / HiFi-GAN) VAE and vocoder layouts mapped onto diffusers' AutoencoderKL and transformers'
SpeechT5HifiGan.

The VAE key mapping is diffusers' own single-file helper (`convert_ldm_vae_checkpoint`); the HiFi-GAN one is
written here because no library ships it (diffusers keeps it in a script, not in the package): it is a
rename of `ups.*` to `upsampler.*` plus folding weight norm where a file still has it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors.torch import load_file
from torch import nn
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from utils.errors import UserError
from utils.mel import MelConfig

# AudioLDM's audio contract, which Tango shares and our base config uses: 16 kHz, 64 mels 0-8 kHz, hop 160,
# window 1024, 10.24 s (1024 frames). A model made for anything else cannot run on our mels.
AUDIO = MelConfig()

# AudioLDM's 16 kHz / 64-mel HiFi-GAN (the original code hard-codes it; so do its and Tango's checkpoints)
HIFIGAN_16K = dict(
    model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024, upsample_rates=[5, 4, 2, 2, 2],
    upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], normalize_before=False,
)


def check_audio(where: str, **found: float | None) -> None:
    """Each given setting (MelConfig field name -> value) must equal AudioLDM's contract."""
    wrong = {k: v for k, v in found.items() if v is not None and float(v) != float(getattr(AUDIO, k))}
    if wrong:
        want = {k: getattr(AUDIO, k) for k in wrong}
        raise UserError(f"{where}: audio contract {wrong} differs from this toolkit's {want} (16 kHz, 64 mels, hop 160); "
                        "such a model cannot run on our mels and is not converted")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors / .bin / .ckpt file (a Lightning `state_dict` is unwrapped), never running
    code from it: pickles are read with weights_only=True."""
    if not path.is_file():
        raise UserError(f"{path} not found")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch's unpickler fails on a foreign file with any error (IndexError, KeyError, ...)
        raise UserError(f"{path} could not be read as a checkpoint (truncated, corrupt, or holding objects other than "
                        f"tensors, which are not unpickled for safety): {(str(err).splitlines() or [type(err).__name__])[0][:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds no tensor state dict")
    return state


def with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with it removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_exactly(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load every parameter of `module` from `state` and use every entry of it, or say what does not fit.
    Buffers the file lacks (position ids and the like) keep the values the module was built with."""
    own = module.state_dict()
    missing = sorted(set(dict(module.named_parameters())) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or bad_shape:
        parts = [f"{name} {keys[:3]}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape)) if keys]
        raise UserError(f"{where}: weights do not match the {type(module).__name__} they describe: {'; '.join(parts)}")
    module.load_state_dict(state, strict=False)


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`x.weight_g` + `x.weight_v` (torch weight norm over dim 0) -> `x.weight`; other entries unchanged."""
    out = {k: v for k, v in state.items() if not k.endswith((".weight_g", ".weight_v"))}
    for key in state:
        if key.endswith(".weight_v"):
            base = key[: -len(".weight_v")]
            out[f"{base}.weight"] = torch._weight_norm(state[key], state[f"{base}.weight_g"], 0)
    return out


def vocoder_from_hifigan(state: dict[str, torch.Tensor], where: str) -> SpeechT5HifiGan:
    """An original HiFi-GAN state dict (conv_pre, ups.*, resblocks.*, conv_post) -> SpeechT5HifiGan."""
    state = fold_weight_norm(state)
    if "conv_pre.weight" not in state:
        raise UserError(f"{where}: no HiFi-GAN vocoder weights (conv_pre.weight) found")
    check_audio(where, n_mels=state["conv_pre.weight"].shape[1])
    # the width is the one setting the weights show; upsampling, kernels and dilations are AudioLDM's, and
    # load_exactly below fails on any kernel that differs from them
    config = SpeechT5HifiGanConfig(**{**HIFIGAN_16K, "upsample_initial_channel": state["conv_pre.weight"].shape[0]})
    renamed = {("upsampler." + k[len("ups."):] if k.startswith("ups.") else k): v for k, v in state.items()}
    renamed["mean"] = torch.zeros(config.model_in_dim)  # unused with normalize_before=False
    renamed["scale"] = torch.ones(config.model_in_dim)
    vocoder = SpeechT5HifiGan(config)
    load_exactly(vocoder, renamed, f"{where} (vocoder, expected AudioLDM's 16 kHz HiFi-GAN)")
    return vocoder.eval()


def vae_from_ldm(state: dict[str, torch.Tensor], scaling_factor: float, where: str) -> AutoencoderKL:
    """An original latent-diffusion AutoencoderKL state dict (encoder.down.*, mid.attn_1, quant_conv, ...; any
    `first_stage_model.` prefix) -> diffusers' AutoencoderKL. The architecture is read off the weights."""
    state = {k: v for k, v in state.items() if ".vocoder." not in f".{k}"}
    vae_state = with_prefix(state, "first_stage_model.") or state
    if "encoder.conv_in.weight" not in vae_state or "post_quant_conv.weight" not in vae_state:
        raise UserError(f"{where}: no latent-diffusion VAE weights (encoder.conv_in, post_quant_conv) found")
    levels = sorted({int(k.split(".")[2]) for k in vae_state if k.startswith("encoder.down.")})
    blocks = {int(k.split(".")[4]) for k in vae_state if k.startswith("encoder.down.0.block.")}
    channels = [vae_state[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] for i in levels]
    config = dict(
        in_channels=vae_state["encoder.conv_in.weight"].shape[1], out_channels=vae_state["decoder.conv_out.weight"].shape[0],
        down_block_types=("DownEncoderBlock2D",) * len(levels), up_block_types=("UpDecoderBlock2D",) * len(levels),
        block_out_channels=tuple(channels), layers_per_block=len(blocks),
        latent_channels=vae_state["post_quant_conv.weight"].shape[1], norm_num_groups=32,  # the original code's GroupNorm(32)
        scaling_factor=float(scaling_factor),
    )
    vae = AutoencoderKL(**config)
    load_exactly(vae, convert_ldm_vae_checkpoint(vae_state, config), f"{where} (VAE)")
    return vae.eval()


def _indices(state: dict[str, torch.Tensor], prefix: str) -> list[int]:
    """Sorted distinct integers i of keys `prefix{i}.…`."""
    return sorted({int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)})


def unet_config_from_weights(state: dict[str, torch.Tensor], attention_head_dim: int = 8) -> dict:
    """A UNet2DConditionModel config read off diffusers-layout U-Net weights.

    What weights cannot show takes the value of the published AudioLDM and Tango configs: 8 attention heads
    (diffusers' `attention_head_dim` default, which both use) and 32 normalisation groups. In a U-Net
    conditioned on a global vector (AudioLDM's `class_embedding`) whose second attentions read their own
    channels, they are self-attention; otherwise they read text states of the width they show.
    """
    levels = _indices(state, "down_blocks.")
    channels = [state[f"down_blocks.{i}.resnets.0.conv2.weight"].shape[0] for i in levels]
    attention = [any(k.startswith(f"down_blocks.{i}.attentions.") for k in state) for i in levels]
    if not any(attention):
        raise UserError("the U-Net weights have no attention layers; this is not an AudioLDM or Tango U-Net")
    first = attention.index(True)
    context = [state[f"down_blocks.{i}.attentions.0.transformer_blocks.0.attn2.to_k.weight"].shape[1] if a else c
               for i, (a, c) in enumerate(zip(attention, channels))]
    if "class_embedding.weight" in state and context == channels:
        cross_attention_dim: int | list[int] = list(channels)  # attn2 attends to the image itself (AudioLDM)
    else:
        text_dims = {d for d, a in zip(context, attention) if a}
        cross_attention_dim = text_dims.pop() if len(text_dims) == 1 else context
    config = dict(
        in_channels=state["conv_in.weight"].shape[1], out_channels=state["conv_out.weight"].shape[0],
        block_out_channels=tuple(channels), layers_per_block=len(_indices(state, "down_blocks.0.resnets.")),
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        mid_block_type="UNetMidBlock2DCrossAttn" if "mid_block.attentions.0.proj_in.weight" in state else None,
        transformer_layers_per_block=len(_indices(state, f"down_blocks.{first}.attentions.0.transformer_blocks.")),
        cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim, norm_num_groups=32,
        use_linear_projection=state[f"down_blocks.{first}.attentions.0.proj_in.weight"].ndim == 2,
    )
    time_dim = state["time_embedding.linear_2.weight"].shape[0]
    if "class_embedding.weight" in state:  # AudioLDM: Linear(text_dim, time_dim) on the CLAP vector
        config.update(class_embed_type="simple_projection", projection_class_embeddings_input_dim=state["class_embedding.weight"].shape[1],
                      class_embeddings_concat=state["down_blocks.0.resnets.0.time_emb_proj.weight"].shape[1] == 2 * time_dim)
    elif "class_embedding.linear_1.weight" in state:  # a TimestepEmbedding MLP (our pooled_text)
        config.update(class_embed_type="projection", projection_class_embeddings_input_dim=state["class_embedding.linear_1.weight"].shape[1])
    return config
