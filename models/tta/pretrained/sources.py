"""Readers of the published layouts. Each returns a `Published` model held in memory, fully checked; nothing
is written here.

- `audioldm`: a diffusers AudioLDM folder (`model_index.json`; vae, unet, text_encoder = CLAP text tower with
  projection, tokenizer = RoBERTa, vocoder = SpeechT5HifiGan, scheduler = DDIM).
- `audioldm-ckpt`: an original AudioLDM checkpoint (S/M/L `.ckpt`): `first_stage_model.*` (VAE, with the
  vocoder under `.vocoder.`), `model.diffusion_model.*` (U-Net; `model_ema.*` preferred when present),
  `cond_stage_model.model.text_*` (CLAP text branch) and `scale_factor`. The original code took the RoBERTa
  tokenizer and text-tower shape from `roberta-base`, so a roberta-base folder is needed beside it.
- `tango`: a Tango / Tango 2 folder (`main_config.json`; `pytorch_model_main.bin` with `unet.*` (diffusers
  layout) and `text_encoder.*` (FLAN-T5 encoder); `vae_config.json` + `pytorch_model_vae.bin` (original VAE
  layout with the vocoder inside); `stft_config.json`). Tango loads its tokenizer and T5 config from the hub
  by name (`text_encoder_name`) and its noise schedule from Stable Diffusion 2.1's repository
  (`scheduler_name`); a local copy of the former is needed, the latter is stored here (`SD21_SCHEDULE`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from transformers import (
    AutoConfig, AutoTokenizer, ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, T5EncoderModel,
)

from models.base.loading import load_part
from models.tta.audioldm.model import SCHEDULE_KEYS
from models.tta.pretrained.parts import (
    check_audio, load_exactly, read_checkpoint, unet_config_from_weights, vae_from_ldm, vocoder_from_hifigan, with_prefix,
)
from utils.errors import UserError

# Stable Diffusion 2.1's scheduler/scheduler_config.json, which Tango and Tango 2 name as `scheduler_name`
# and load from the hub at run time (v-prediction, scaled-linear betas 0.00085-0.012).
SD21_SCHEDULER_NAME = "stabilityai/stable-diffusion-2-1"
SD21_SCHEDULE = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    prediction_type="v_prediction", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, trained_betas=None,
)
# What the original code and papers sample with: AudioLDM DDIM 200 steps, guidance 2.5; Tango DDPM 100 / 3.
AUDIOLDM_SAMPLER = {"sampler": "ddim", "num_steps": 200, "guidance_scale": 2.5}
TANGO_SAMPLER = {"sampler": "ddpm", "num_steps": 100, "guidance_scale": 3.0}
# The original AudioLDM schedule (its config: linear_start 0.0015, linear_end 0.0195, 1000 steps, epsilon)
AUDIOLDM_SCHEDULE = dict(
    num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False,
    prediction_type="epsilon", set_alpha_to_one=False, steps_offset=1,
)
@dataclass
class Published:
    """A published model in memory. `unet` is None when only the VAE/vocoder parts were asked for."""

    vae: AutoencoderKL
    vocoder: SpeechT5HifiGan
    unet: UNet2DConditionModel | None = None
    text_model: Any = None
    tokenizer: Any = None
    text_config: dict[str, Any] = field(default_factory=dict)  # TextEncoderConfig fields
    noise_scheduler: dict[str, Any] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # what was converted, and what was assumed


def need_files(src: Path, layout: str, names: list[str]) -> None:
    """All of `names` must exist under `src`, else one line naming what was found and what is missing."""
    if not src.exists():
        raise UserError(f"--src {src} does not exist")
    missing = [n for n in names if not (src / n).exists()]
    if missing:
        found = sorted(p.name for p in src.iterdir()) if src.is_dir() else [src.name]
        raise UserError(f"{src} is not a complete {layout}: missing {missing} (found {found[:12]})")


def schedule_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers scheduler config -> the settings our schedule keeps (every one that shapes sampling)."""
    return {k: v for k, v in config.items() if k in SCHEDULE_KEYS}


def check_vocoder_contract(vocoder: SpeechT5HifiGan, where: str) -> None:
    c = vocoder.config
    check_audio(where, sample_rate=c.sampling_rate, n_mels=c.model_in_dim, hop_length=math.prod(c.upsample_rates))


# ---- diffusers AudioLDM folder -------------------------------------------------------------------------
def read_audioldm_folder(src: Path, part: str) -> Published:
    need_files(src, "diffusers AudioLDM folder", ["model_index.json", "vae", "vocoder"])
    index = json.loads((src / "model_index.json").read_text())
    if index.get("_class_name") not in ("AudioLDMPipeline", None):
        raise UserError(f"{src}/model_index.json describes a {index.get('_class_name')}, not an AudioLDMPipeline")
    vocoder = load_part("vocoder", SpeechT5HifiGan.from_pretrained, src / "vocoder")
    check_vocoder_contract(vocoder, f"{src / 'vocoder'}")
    vae = load_part("VAE", AutoencoderKL.from_pretrained, src / "vae")
    published = Published(vae=vae, vocoder=vocoder, source={"kind": "audioldm", "path": str(src)})
    if part != "all":
        return published
    need_files(src, "diffusers AudioLDM folder", ["unet", "text_encoder", "tokenizer", "scheduler/scheduler_config.json"])
    published.unet = load_part("U-Net", UNet2DConditionModel.from_pretrained, src / "unet")
    published.text_model = load_part("CLAP text encoder", ClapTextModelWithProjection.from_pretrained, src / "text_encoder")
    published.tokenizer = load_part("tokenizer", AutoTokenizer.from_pretrained, src / "tokenizer")
    scheduler = json.loads((src / "scheduler" / "scheduler_config.json").read_text())
    published.noise_scheduler = schedule_settings(scheduler)
    published.text_config = {"max_length": int(published.tokenizer.model_max_length), "trainable": False, "output": "projected"}
    published.sampler = dict(AUDIOLDM_SAMPLER)
    return published


# ---- original AudioLDM checkpoint ----------------------------------------------------------------------
def clap_text_from_original(state: dict[str, torch.Tensor], roberta_dir: Path, where: str) -> ClapTextModelWithProjection:
    """`cond_stage_model.model.text_branch.*` (a RoBERTa) + `text_projection.{0,2}` -> ClapTextModelWithProjection,
    shaped by the roberta-base config the original code instantiated."""
    text = with_prefix(state, "cond_stage_model.model.")
    branch = with_prefix(text, "text_branch.")
    if not branch or "text_projection.2.weight" not in text:
        raise UserError(f"{where}: no CLAP text branch (cond_stage_model.model.text_branch.*, text_projection.*) found")
    roberta = AutoConfig.from_pretrained(str(roberta_dir)).to_dict()
    shared = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
              "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
              "layer_norm_eps", "pad_token_id", "bos_token_id", "eos_token_id")
    config = ClapTextConfig(**{k: roberta[k] for k in shared if k in roberta},
                            projection_dim=text["text_projection.2.weight"].shape[0], projection_hidden_act="relu")
    renamed = {f"text_model.{k}": v for k, v in branch.items()}
    for i, j in ((0, 1), (2, 2)):  # nn.Sequential(Linear, ReLU, Linear) -> linear1 / linear2
        for p in ("weight", "bias"):
            renamed[f"text_projection.linear{j}.{p}"] = text[f"text_projection.{i}.{p}"]
    model = ClapTextModelWithProjection(config)
    load_exactly(model, renamed, f"{where} (CLAP text branch against {roberta_dir}'s config)")
    return model.eval()


def unet_from_original(state: dict[str, torch.Tensor], where: str) -> UNet2DConditionModel:
    """`model.diffusion_model.*` (or its `model_ema.*` twin) -> UNet2DConditionModel, keys mapped by diffusers'
    `convert_ldm_unet_checkpoint`, plus AudioLDM's FiLM projection (`film_emb`) as the class embedding."""
    prefix = "model.diffusion_model."
    unet = with_prefix(state, prefix)
    if "input_blocks.0.0.weight" not in unet:
        raise UserError(f"{where}: no U-Net weights (model.diffusion_model.*) found")
    ema = {k: v for k, v in state.items() if k.startswith("model_ema.")}
    if ema:  # EMA keys are the U-Net's with the dots removed: model_ema.diffusion_modelinput_blocks00weight
        flat = {"model_ema." + re.sub(r"\.", "", "diffusion_model." + k): k for k in unet}
        if set(flat) <= set(ema):
            unet = {k: ema[f] for f, k in flat.items()}
    res_blocks = 0
    while f"input_blocks.{res_blocks + 1}.0.op.weight" not in unet and f"input_blocks.{res_blocks + 1}.0.in_layers.0.weight" in unet:
        res_blocks += 1
    converted = convert_ldm_unet_checkpoint({prefix + k: v for k, v in unet.items()}, {"layers_per_block": res_blocks})
    if "film_emb.weight" in unet:
        converted["class_embedding.weight"], converted["class_embedding.bias"] = unet["film_emb.weight"], unet["film_emb.bias"]
    model = UNet2DConditionModel(**unet_config_from_weights(converted))
    load_exactly(model, converted, f"{where} (U-Net)")
    return model.eval()


def read_audioldm_ckpt(src: Path, part: str, roberta_dir: Path | None) -> Published:
    if src.is_dir():
        raise UserError(f"--src {src} is a folder; --from audioldm-ckpt takes the .ckpt file (for a diffusers folder use --from audioldm)")
    state = read_checkpoint(src)
    vocoder = vocoder_from_hifigan(with_prefix(state, "first_stage_model.vocoder."), str(src))
    scale = float(state["scale_factor"]) if "scale_factor" in state else None
    if scale is None:
        raise UserError(f"{src}: no scale_factor entry; not an AudioLDM latent-diffusion checkpoint")
    vae = vae_from_ldm(state, scale, str(src))
    published = Published(vae=vae, vocoder=vocoder, source={"kind": "audioldm-ckpt", "path": str(src)})
    if part != "all":
        return published
    if roberta_dir is None:
        raise UserError("--from audioldm-ckpt needs --text_encoder DIR: a roberta-base folder (config + tokenizer), "
                        "which the original AudioLDM code loaded by name")
    published.unet = unet_from_original(state, str(src))
    published.text_model = clap_text_from_original(state, roberta_dir, str(src))
    published.tokenizer = load_part("tokenizer", AutoTokenizer.from_pretrained, roberta_dir)
    published.noise_scheduler = dict(AUDIOLDM_SCHEDULE)
    published.text_config = {"max_length": 512, "trainable": False, "output": "projected"}
    published.sampler = dict(AUDIOLDM_SAMPLER)
    published.source["used_ema"] = any(k.startswith("model_ema.") for k in state)
    return published


# ---- Tango folder --------------------------------------------------------------------------------------
def tango_unet_config(src: Path, main: dict) -> dict | None:
    """Tango's U-Net config file, which lives in Tango's code repository (`unet_model_config_path`, e.g.
    configs/diffusion_model_config.json), not in its hub folder: used when copied into the folder (at that
    relative path or beside main_config.json); None otherwise (the config is then read off the weights)."""
    named = main.get("unet_model_config_path") or "diffusion_model_config.json"
    for path in (src / named, src / Path(named).name):
        if path.is_file():
            config = UNet2DConditionModel.load_config(str(path))
            config.pop("_use_default_values", None)  # else from_config would reset the settings it lists
            return config
    return None


TANGO_FILES = ["main_config.json", "pytorch_model_main.bin", "vae_config.json", "pytorch_model_vae.bin", "stft_config.json"]


def read_tango_folder(src: Path, part: str, t5_dir: Path | None) -> Published:
    need_files(src, "Tango folder", TANGO_FILES if part == "all" else TANGO_FILES[2:])
    stft = json.loads((src / "stft_config.json").read_text())
    check_audio(f"{src / 'stft_config.json'}", sample_rate=stft.get("sampling_rate"), n_mels=stft.get("n_mel_channels"),
                hop_length=stft.get("hop_length"), win_length=stft.get("win_length"), n_fft=stft.get("filter_length"),
                fmin=stft.get("mel_fmin"), fmax=stft.get("mel_fmax"))
    vae_config = json.loads((src / "vae_config.json").read_text())
    vae_state = read_checkpoint(src / "pytorch_model_vae.bin")
    vocoder = vocoder_from_hifigan(with_prefix(vae_state, "vocoder."), str(src / "pytorch_model_vae.bin"))
    vae = vae_from_ldm(vae_state, float(vae_config.get("scale_factor", 1.0)), str(src / "pytorch_model_vae.bin"))
    published = Published(vae=vae, vocoder=vocoder, source={"kind": "tango", "path": str(src)})
    if part != "all":
        return published
    main = json.loads((src / "main_config.json").read_text())
    if main.get("scheduler_name", SD21_SCHEDULER_NAME) != SD21_SCHEDULER_NAME:
        raise UserError(f"{src}/main_config.json names scheduler {main['scheduler_name']!r}; only Tango's "
                        f"{SD21_SCHEDULER_NAME!r} schedule is known here")
    if t5_dir is None:
        raise UserError(f"--from tango needs --text_encoder DIR: a local {main.get('text_encoder_name', 'FLAN-T5')} folder "
                        "(its config and tokenizer; Tango loads them by name, its weights come from the Tango folder)")
    state = read_checkpoint(src / "pytorch_model_main.bin")
    unet_state = with_prefix(state, "unet.")
    if not unet_state:
        raise UserError(f"{src / 'pytorch_model_main.bin'}: no unet.* weights")
    unet_config = tango_unet_config(src, main)
    unet = UNet2DConditionModel.from_config(unet_config) if unet_config else UNet2DConditionModel(**unet_config_from_weights(unet_state))
    load_exactly(unet, unet_state, f"{src / 'pytorch_model_main.bin'} (U-Net)")
    published.source["unet_config"] = "Tango's config file" if unet_config else "read off the weights (8 attention heads assumed)"
    text_model = T5EncoderModel(AutoConfig.from_pretrained(str(t5_dir)))
    load_exactly(text_model, with_prefix(state, "text_encoder."), f"{src / 'pytorch_model_main.bin'} (text encoder against {t5_dir}'s config)")
    published.unet, published.text_model = unet.eval(), text_model.eval()
    published.tokenizer = load_part("tokenizer", AutoTokenizer.from_pretrained, t5_dir)
    published.noise_scheduler = dict(SD21_SCHEDULE)
    published.text_config = {"max_length": int(min(published.tokenizer.model_max_length, 512)), "trainable": False, "output": "tokens"}
    published.sampler = dict(TANGO_SAMPLER)
    published.source["scheduler"] = f"{SD21_SCHEDULER_NAME} scheduler config (Tango's main_config scheduler_name), stored here"
    return published
