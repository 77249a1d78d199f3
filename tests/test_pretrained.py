"""Published checkpoints: tiny random weights saved in AudioLDM's and Tango's layouts, converted, and run through
our pipeline, must sound exactly like the reference implementations on the same weights and noise."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler
from transformers import AutoTokenizer, SpeechT5HifiGan

from conftest import AUDIOCAPS_TABLES, REPO
from models.tta.audioldm.pipeline import TTAPipeline
from models.tta.autoencoderkl.model import load_pretrained_vae, load_vae_export
from models.tta.pretrained.convert import convert
from models.vocoder.hifigan import load_hifigan
from published_layouts import (
    SD21_DDIM, original_audioldm_state, save_roberta_folder, save_tiny_audioldm, save_tiny_tango,
)
from utils.errors import UserError
from utils.mel import MelConfig

PROMPTS = ["A dog barks twice", "Rain falls on a tin roof while thunder rumbles"]
SECONDS, STEPS, GUIDANCE, SEED = 1.28, 3, 2.5, 11


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def captions() -> list[str]:
    with (AUDIOCAPS_TABLES / "train.csv").open(newline="", encoding="utf-8") as f:
        return [row["caption"] for _, row in zip(range(800), csv.DictReader(f))]


@pytest.fixture(scope="module")
def audioldm(tmp_path_factory, captions):
    folder = tmp_path_factory.mktemp("audioldm") / "audioldm-tiny"
    return folder, save_tiny_audioldm(folder, captions)


@pytest.fixture(scope="module")
def diffusers_reference(audioldm) -> np.ndarray:
    """diffusers' AudioLDMPipeline loaded from the saved folder: one generator per clip, DDIM, CFG."""
    folder, _ = audioldm
    pipe = AudioLDMPipeline.from_pretrained(str(folder))
    gens = [torch.Generator().manual_seed(SEED + i) for i in range(len(PROMPTS))]
    return pipe(PROMPTS, num_inference_steps=STEPS, guidance_scale=GUIDANCE, audio_length_in_s=SECONDS, generator=gens).audios


def ours(export) -> np.ndarray:
    pipe = TTAPipeline.from_experiment(export)
    return pipe(PROMPTS, sampler="ddim", num_steps=STEPS, guidance_scale=GUIDANCE, seed=SEED, duration=SECONDS).wav.numpy()


def test_diffusers_audioldm_folder_sounds_like_diffusers_pipeline(audioldm, diffusers_reference, tmp_path):
    folder, _ = audioldm
    out = convert("audioldm", folder, tmp_path / "converted")
    meta = json.loads((out / "tta_artifact.json").read_text())
    assert meta["text_encoder"]["output"] == "projected" and meta["sampler"]["sampler"] == "ddim"
    assert meta["noise_scheduler"]["steps_offset"] == 1 and meta["noise_scheduler"]["set_alpha_to_one"] is False
    wav = ours(out)
    assert wav.shape == diffusers_reference.shape == (2, 20480)
    assert relative_error(wav, diffusers_reference) <= 1e-4


def test_original_ckpt_sounds_like_diffusers_pipeline(audioldm, diffusers_reference, tmp_path):
    """The same weights in the original `.ckpt` layout; the real U-Net is only in model_ema.* (taken over the
    zeroed raw weights) and the tokenizer/text-tower shape come from a roberta-base stand-in folder."""
    _, pipe = audioldm
    ckpt = tmp_path / "audioldm-s-tiny.ckpt"
    torch.save({"state_dict": original_audioldm_state(pipe)}, ckpt)
    out = convert("audioldm-ckpt", ckpt, tmp_path / "converted", text_encoder=save_roberta_folder(tmp_path / "roberta-base", pipe))
    assert json.loads((out / "tta_artifact.json").read_text())["config"]["converted_from"]["used_ema"] is True
    assert relative_error(ours(out), diffusers_reference) <= 1e-4


@torch.no_grad()
def tango_reference(truth: dict, t5_folder, prompts: list[str]) -> np.ndarray:
    """Tango's AudioDiffusion.inference + decode, written from its code, on the modules the folder was saved from."""
    tokenizer = AutoTokenizer.from_pretrained(str(t5_folder))
    text, unet, vae, vocoder = truth["text"], truth["unet"], truth["vae"], truth["vocoder"]
    batch = tokenizer(prompts, max_length=tokenizer.model_max_length, padding=True, truncation=True, return_tensors="pt")
    prompt_embeds = text(input_ids=batch.input_ids, attention_mask=batch.attention_mask)[0]
    uncond = tokenizer([""] * len(prompts), max_length=prompt_embeds.shape[1], padding="max_length", truncation=True, return_tensors="pt")
    negative = text(input_ids=uncond.input_ids, attention_mask=uncond.attention_mask)[0]
    embeds, mask = torch.cat([negative, prompt_embeds]), torch.cat([uncond.attention_mask, batch.attention_mask]) == 1
    scheduler = DDIMScheduler.from_config(SD21_DDIM)  # as from_pretrained reads the config file
    scheduler.set_timesteps(STEPS)
    frames = int(SECONDS * 100)  # Tango: (B, 8, 256, 16) for 10.24 s, i.e. time x mel
    latents = torch.cat([torch.randn((1, 8, frames // 4, 16), generator=torch.Generator().manual_seed(SEED + i)) for i in range(len(prompts))])
    latents = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        noise_uncond, noise_text = unet(inp, t, encoder_hidden_states=embeds, encoder_attention_mask=mask).sample.chunk(2)
        latents = scheduler.step(noise_uncond + 3.0 * (noise_text - noise_uncond), t, latents).prev_sample
    mel = vae.decode(latents / vae.config.scaling_factor).sample  # [B, 1, T, 64]
    return vocoder(mel.squeeze(1)).numpy()


def test_tango_folder_sounds_like_tango_inference(tmp_path, tiny_t5):
    truth = save_tiny_tango(tmp_path / "tango", tiny_t5)
    out = convert("tango", tmp_path / "tango", tmp_path / "converted", text_encoder=tiny_t5)
    meta = json.loads((out / "tta_artifact.json").read_text())
    assert meta["noise_scheduler"]["prediction_type"] == "v_prediction" and "stable-diffusion-2-1" in meta["config"]["converted_from"]["scheduler"]
    pipe = TTAPipeline.from_experiment(out)
    wav = pipe(PROMPTS, sampler="ddim", num_steps=STEPS, guidance_scale=3.0, seed=SEED, duration=SECONDS).wav.numpy()
    ref = tango_reference(truth, tiny_t5, PROMPTS)
    # AudioLDM's HiFi-GAN kernels add 32 samples; Tango keeps them, we crop to the clip (as diffusers' AudioLDM)
    assert ref.shape == (2, 20480 + 32) and wav.shape == (2, 20480)
    ref = ref[:, :20480]
    assert relative_error(wav, ref) <= 1e-4


def test_tango_unet_config_file_is_used_when_present(tmp_path, tiny_t5):
    """With Tango's config file copied into the folder, settings the weights cannot show come from it."""
    truth = save_tiny_tango(tmp_path / "tango", tiny_t5)
    (tmp_path / "tango" / "configs").mkdir()
    config = {**dict(truth["unet"].config), "attention_head_dim": 4}
    (tmp_path / "tango" / "configs" / "diffusion_model_config.json").write_text(json.dumps(config, default=list))
    out = convert("tango", tmp_path / "tango", tmp_path / "converted", text_encoder=tiny_t5)
    assert json.loads((out / "unet" / "config.json").read_text())["attention_head_dim"] == 4
    assert json.loads((out / "tta_artifact.json").read_text())["config"]["converted_from"]["unet_config"] == "Tango's config file"


def test_parts_convert_alone_for_the_other_stages(audioldm, tmp_path):
    folder, pipe = audioldm
    vae_out = convert("audioldm", folder, tmp_path / "vae", part="vae")
    vae, mel_cfg, _ = load_vae_export(vae_out)
    assert mel_cfg == MelConfig() and vae.config.scaling_factor == pytest.approx(pipe.vae.config.scaling_factor)
    for k, v in pipe.vae.state_dict().items():
        torch.testing.assert_close(vae.state_dict()[k], v)
    assert isinstance(load_pretrained_vae(vae_out, MelConfig()), AutoencoderKL)  # --pretrained_vae takes the export
    voc_out = convert("audioldm", folder, tmp_path / "vocoder", part="vocoder")
    mel = torch.randn(1, 64, 20)
    torch.testing.assert_close(load_hifigan(voc_out, MelConfig())(mel), load_hifigan(folder / "vocoder", MelConfig())(mel))
    with pytest.raises(UserError, match="is an export of stage 'hifigan', expected 'audioldm'"):
        TTAPipeline.from_experiment(voc_out)
    with pytest.raises(UserError, match="is an export of stage 'autoencoderkl', expected 'audioldm'"):
        TTAPipeline.from_experiment(vae_out)
    with pytest.raises(UserError, match="is an export of stage 'hifigan', expected 'autoencoderkl'"):
        load_pretrained_vae(voc_out, MelConfig())


def test_inference_script_runs_a_converted_model(audioldm, tmp_path):
    folder, _ = audioldm
    out = convert("audioldm", folder, tmp_path / "converted")
    res = subprocess.run(
        ["sh", "egs/tta/audioldm/run_inference.sh", "--checkpoint_path", str(out), "--text", "A cat meows",
         "--num_steps", "2", "--duration", "1.28", "--output_dir", str(tmp_path / "gen")],
        cwd=REPO, capture_output=True, text=True, env={**__import__("os").environ, "PYTHON": sys.executable},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(list((tmp_path / "gen").glob("*.wav"))) == 1


def convert_cli(*args: str):
    return subprocess.run([sys.executable, "bins/tta/convert.py", *args], cwd=REPO, capture_output=True, text=True)


def test_bad_sources_give_one_line_and_write_nothing(audioldm, tmp_path, tiny_t5):
    folder, _ = audioldm
    out = tmp_path / "out"
    # unknown layout: a folder that is not an AudioLDM folder
    res = convert_cli("--from", "audioldm", "--src", str(tiny_t5), "--out", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "missing ['model_index.json'" in res.stderr and "found" in res.stderr
    assert not out.exists()
    # incomplete layout
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    shutil.rmtree(partial / "unet")
    with pytest.raises(UserError, match=r"missing \['unet'\]"):
        convert("audioldm", partial, out)
    # another audio contract (a 48 kHz vocoder)
    cfg = json.loads((partial / "vocoder" / "config.json").read_text())
    (partial / "vocoder" / "config.json").write_text(json.dumps({**cfg, "sampling_rate": 48000}))
    with pytest.raises(UserError, match="audio contract .*48000"):
        convert("audioldm", partial, out, part="vocoder")
    # truncated weights
    tango = tmp_path / "tango"
    save_tiny_tango(tango, tiny_t5)
    data = (tango / "pytorch_model_main.bin").read_bytes()
    (tango / "pytorch_model_main.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="could not be read as a checkpoint"):
        convert("tango", tango, out, text_encoder=tiny_t5)
    # a file that is no checkpoint at all (a wav given as --src): torch's unpickler raised IndexError
    not_ckpt = tmp_path / "clip.ckpt"
    not_ckpt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64)))
    with pytest.raises(UserError, match="clip.ckpt could not be read as a checkpoint"):
        convert("audioldm-ckpt", not_ckpt, out, text_encoder=tiny_t5)
    # Tango needs its text encoder's config and tokenizer
    with pytest.raises(UserError, match="needs --text_encoder"):
        convert("tango", tango, out)
    stft = json.loads((tango / "stft_config.json").read_text())
    (tango / "stft_config.json").write_text(json.dumps({**stft, "sampling_rate": 48000, "n_mel_channels": 128}))
    with pytest.raises(UserError, match="audio contract"):
        convert("tango", tango, out, text_encoder=tiny_t5)
    assert not out.exists()


def test_existing_output_is_kept_unless_overwrite(audioldm, tmp_path):
    folder, _ = audioldm
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--overwrite"):
        convert("audioldm", folder, out, part="vocoder")
    assert (out / "keep.txt").read_text() == "mine"
    convert("audioldm", folder, out, part="vocoder", overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "vocoder" / "config.json").exists()
    assert isinstance(SpeechT5HifiGan.from_pretrained(str(out / "vocoder")), SpeechT5HifiGan)
