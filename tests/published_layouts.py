"""Tiny random models saved in the exact layouts AudioLDM and Tango publish, for the conversion tests.

- `save_tiny_audioldm(folder)`: a diffusers AudioLDM folder (`save_pretrained` of a real AudioLDMPipeline).
- `original_audioldm_state(pipe)`: the same weights in the original AudioLDM checkpoint layout
  (`first_stage_model.*`, `model.diffusion_model.*`, `cond_stage_model.model.text_*`, `scale_factor`),
  written from the original code's module names; the inverse of the conversion, kept independent of it.
- `save_tiny_tango(folder, t5_folder)`: a Tango folder (main_config.json, pytorch_model_main.bin with
  `unet.*`/`text_encoder.*`, vae_config.json + pytorch_model_vae.bin with the vocoder inside, stft_config.json).

Sizes are tiny, but every published constant that the files do not record (32 norm groups, 8 attention
heads, AudioLDM's HiFi-GAN upsampling and kernels, 64 mels at 16 kHz with hop 160) is kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import (
    ClapTextConfig, ClapTextModelWithProjection, RobertaConfig, RobertaTokenizerFast, SpeechT5HifiGan,
    SpeechT5HifiGanConfig, T5EncoderModel,
)

AUDIOLDM_DDIM = dict(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                     clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
VOCODER = dict(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=32, upsample_rates=[5, 4, 2, 2, 2],
               upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
               resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], normalize_before=False)
TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, layer_norm_eps=1e-5,
            max_position_embeddings=130, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)


def roberta_tokenizer(captions: list[str]) -> RobertaTokenizerFast:
    """A byte-level BPE tokenizer with RoBERTa's specials and post-processing, trained on `captions`."""
    from tokenizers import ByteLevelBPETokenizer, processors

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(captions, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                                unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=64)


def tiny_vae(latent_channels: int, seed: int) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 32, 64), layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=32, scaling_factor=0.8)


def tiny_vocoder(seed: int) -> SpeechT5HifiGan:
    torch.manual_seed(seed)
    return SpeechT5HifiGan(SpeechT5HifiGanConfig(**VOCODER)).eval()


def save_tiny_audioldm(folder: Path, captions: list[str], seed: int = 0) -> AudioLDMPipeline:
    """A diffusers AudioLDM pipeline (64 mels, 16 kHz, hop 160, f = 4 VAE) saved with save_pretrained."""
    tokenizer = roberta_tokenizer(captions)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(32, 64), class_embed_type="simple_projection", projection_class_embeddings_input_dim=16,
        class_embeddings_concat=True,
    )
    text = ClapTextModelWithProjection(ClapTextConfig(vocab_size=len(tokenizer), projection_dim=16, projection_hidden_act="relu", **TEXT))
    pipe = AudioLDMPipeline(vae=tiny_vae(4, seed + 1), text_encoder=text.eval(), tokenizer=tokenizer, unet=unet,
                            scheduler=DDIMScheduler(**AUDIOLDM_DDIM), vocoder=tiny_vocoder(seed + 2))
    pipe.save_pretrained(str(folder))
    return pipe


def save_roberta_folder(folder: Path, pipe: AudioLDMPipeline) -> Path:
    """A stand-in for the `roberta-base` folder the original AudioLDM code loads by name: config + tokenizer."""
    RobertaConfig(vocab_size=len(pipe.tokenizer), **TEXT).save_pretrained(str(folder))
    pipe.tokenizer.save_pretrained(str(folder))
    return folder


# ---- diffusers -> original module names ------------------------------------------------------------------
def ldm_resnet(name: str) -> str:
    for new, old in (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
                     ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")):
        name = name.replace(new, old)
    return name


def original_unet(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """diffusers UNet2DConditionModel keys -> openaimodel UNetModel keys (input/middle/output_blocks, film_emb)."""
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2", "conv_in": "input_blocks.0.0",
             "conv_norm_out": "out.0", "conv_out": "out.2", "class_embedding": "film_emb"}
    out = {}
    for key, value in state.items():
        head, _, param = key.rpartition(".")
        if head in fixed:
            out[f"{fixed[head]}.{param}"] = value
            continue
        if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            idx = 1 + b * (layers + 1) + j
            out[f"input_blocks.{idx}.0.{ldm_resnet(rest)}" if kind == "resnets" else f"input_blocks.{idx}.1.{rest}"] = value
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            out[f"input_blocks.{(int(m[1]) + 1) * (layers + 1)}.0.op.{m[2]}"] = value
        elif m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
            idx = {"resnets": {0: 0, 1: 2}, "attentions": {0: 1}}[m[1]][int(m[2])]
            out[f"middle_block.{idx}.{ldm_resnet(m[3]) if m[1] == 'resnets' else m[3]}"] = value
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            idx = int(m[1]) * (layers + 1) + int(m[3])
            out[f"output_blocks.{idx}.0.{ldm_resnet(m[4])}" if m[2] == "resnets" else f"output_blocks.{idx}.1.{m[4]}"] = value
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            b = int(m[1])
            has_attention = any(k.startswith(f"up_blocks.{b}.attentions.") for k in state)
            out[f"output_blocks.{b * (layers + 1) + layers}.{2 if has_attention else 1}.conv.{m[2]}"] = value
        else:
            raise KeyError(key)
    return out


def original_vae(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL keys -> taming/latent-diffusion AutoencoderKL keys (attention as 1x1 convs)."""
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out")
        if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", new):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(weight|bias)", new):
            new = f"{m[1]}.mid.attn_1.{attn[m[2]]}.{m[3]}"
            if m[3] == "weight" and m[2] != "group_norm":
                value = value[:, :, None, None]
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", new):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", new):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", new):
            new = f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", new):
            new = f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
        out[new] = value
    return out


def original_hifigan(vocoder: SpeechT5HifiGan) -> dict[str, torch.Tensor]:
    return {k.replace("upsampler.", "ups."): v for k, v in vocoder.state_dict().items() if k not in ("mean", "scale")}


def original_audioldm_state(pipe: AudioLDMPipeline, ema_only: bool = True) -> dict[str, torch.Tensor]:
    """An AudioLDM `.ckpt` state dict of `pipe`'s weights. With `ema_only`, the real U-Net weights sit only in
    `model_ema.*` (flattened names) and `model.diffusion_model.*` holds zeros, as a checkpoint whose EMA is
    the model to use."""
    state: dict[str, torch.Tensor] = {"scale_factor": torch.tensor(pipe.vae.config.scaling_factor)}
    for k, v in original_vae(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)).items():
        state[f"first_stage_model.{k}"] = v
    for k, v in original_hifigan(pipe.vocoder).items():
        state[f"first_stage_model.vocoder.{k}"] = v
    for k, v in original_unet(pipe.unet.state_dict(), pipe.unet.config.layers_per_block).items():
        state[f"model.diffusion_model.{k}"] = torch.zeros_like(v) if ema_only else v
        if ema_only:
            state["model_ema." + ("diffusion_model." + k).replace(".", "")] = v
    for k, v in pipe.text_encoder.state_dict().items():
        k = k.replace("text_model.", "text_branch.").replace("text_projection.linear1", "text_projection.0")
        state[f"cond_stage_model.model.{k.replace('text_projection.linear2', 'text_projection.2')}"] = v
    return state


# ---- Tango -----------------------------------------------------------------------------------------------
SD21_DDIM = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                 prediction_type="v_prediction", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)


def save_tiny_tango(folder: Path, t5_folder: Path, seed: int = 0) -> dict:
    """A Tango-layout folder of tiny random weights; returns the modules it was written from (the truth)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    text = T5EncoderModel.from_pretrained(str(t5_folder))
    for p in text.parameters():  # other weights than the folder's: the converter must take Tango's
        torch.nn.init.normal_(p, std=0.3)
    unet = UNet2DConditionModel(
        in_channels=8, out_channels=8, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=text.config.d_model,
    )
    vae, vocoder = tiny_vae(8, seed + 1), tiny_vocoder(seed + 2)
    (folder / "main_config.json").write_text(json.dumps({
        "text_encoder_name": "google/flan-t5-large", "scheduler_name": "stabilityai/stable-diffusion-2-1",
        "unet_model_name": None, "unet_model_config_path": "configs/diffusion_model_config.json", "snr_gamma": 5.0}))
    main = {**{f"unet.{k}": v for k, v in unet.state_dict().items()}, **{f"text_encoder.{k}": v for k, v in text.state_dict().items()}}
    torch.save(main, folder / "pytorch_model_main.bin")
    ddconfig = {"double_z": True, "z_channels": 8, "resolution": 256, "downsample_time": False, "in_channels": 1, "out_ch": 1,
                "ch": 32, "ch_mult": [1, 1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    (folder / "vae_config.json").write_text(json.dumps(
        {"image_key": "fbank", "subband": 1, "embed_dim": 8, "time_shuffle": 1, "ddconfig": ddconfig, "scale_factor": 0.8}))
    vae_state = original_vae(vae.state_dict(), 3)
    vae_state.update({f"vocoder.{k}": v for k, v in original_hifigan(vocoder).items()})
    torch.save(vae_state, folder / "pytorch_model_vae.bin")
    (folder / "stft_config.json").write_text(json.dumps({"filter_length": 1024, "hop_length": 160, "win_length": 1024,
                                                          "n_mel_channels": 64, "sampling_rate": 16000, "mel_fmin": 0, "mel_fmax": 8000}))
    return {"unet": unet.eval(), "text": text.eval(), "vae": vae.eval(), "vocoder": vocoder}


def save_tiny_clap_text(folder: Path, captions: list[str], seed: int = 0) -> Path:
    """A CLAP text tower with projection and its RoBERTa tokenizer in one folder (as our exports keep them)."""
    tokenizer = roberta_tokenizer(captions)
    torch.manual_seed(seed)
    ClapTextModelWithProjection(ClapTextConfig(vocab_size=len(tokenizer), projection_dim=16, projection_hidden_act="relu", **TEXT)).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def save_tiny_clap(folder: Path) -> Path:
    """A whole CLAP model (text and HTSAT audio towers) with tokenizer and feature extractor, saved as the
    laion/clap-htsat-unfused release is (transformers folder, rand_trunc features)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    tokenizer = roberta_tokenizer(["a dog barks", "a bell rings twice", "wind blows", "a drum is hit"])
    cfg = ClapConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 64, "max_position_embeddings": 80, "pad_token_id": tokenizer.pad_token_id},
        audio_config={"hidden_size": 64, "depths": [1, 1], "num_attention_heads": [2, 4], "patch_embeds_hidden_size": 32,
                      "window_size": 8, "num_mel_bins": 64, "enable_fusion": False},
        projection_dim=16,
    )
    torch.manual_seed(0)
    ClapModel(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ClapFeatureExtractor(truncation="rand_trunc").save_pretrained(folder)
    return folder
