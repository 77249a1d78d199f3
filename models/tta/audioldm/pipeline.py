"""Text -> audio: the Python API used by the inference script, validation samples and evaluation.

    pipe = TTAPipeline.from_experiment("ckpts/tta/audioldm_demo")   # or a converted AudioLDM / Tango export
    out = pipe(["A high pitched beep repeats"], seed=0)   # out.wav [B, N], out.mel [B, n_mels, T]

Classifier-free guidance runs the unconditional and conditional halves in one batched U-Net call; text is
encoded once per prompt, not per step; VAE decoding and the vocoder run once on the whole batch. Each clip
draws its noise from its own generator (seed + its index), so a clip does not depend on the batch it is in.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    PNDMScheduler,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, load_model
from tqdm import tqdm

from models.base.loading import load_part, reading
from models.tta.artifact import read_artifact, read_stage, write_artifact
from models.tta.audioldm import SAMPLER_NAMES
from models.tta.audioldm.editing import RESAMPLING_SAMPLERS, Edit, check_edit, frequency_mask, plan_windows, time_mask
from models.tta.audioldm.lora import STAGE as LORA_STAGE, add_lora, apply_adapters, read_adapter
from models.tta.audioldm.model import UNetConfig, build_unet, text_condition, unet_stride
from models.tta.audioldm.text_encoder import TextEncoder, TextEncoderConfig, join
from models.tta.autoencoderkl.model import downsample_factor, image_to_mel, load_vae_export, mel_to_image
from models.vocoder import load_vocoder
from models.vocoder.griffinlim import GriffinLim
from utils.errors import UserError
from utils.io import atomic_dir, read_json
from utils.mel import MelConfig, MelFrontEnd, fit_frames
from utils.schema import LoraConfig

SAMPLERS: dict[str, tuple[type, dict[str, Any]]] = dict(zip(SAMPLER_NAMES, [
    (DDPMScheduler, {}),
    (DDIMScheduler, {}),
    (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    (UniPCMultistepScheduler, {}),
    (EulerDiscreteScheduler, {}),
    (EulerAncestralDiscreteScheduler, {}),
    (HeunDiscreteScheduler, {}),
    (PNDMScheduler, {"skip_prk_steps": True}),
], strict=True))
STAGE = "audioldm"
HOW_TO_TRAIN = "sh egs/tta/audioldm/run_train.sh (or convert a published model: sh egs/tta/pretrained/run_convert.sh)"
MAX_SECONDS = 60.0  # longer requests are refused rather than exhausting memory
INVERSION_SAMPLER = "ddim"  # audio-to-audio with --source_prompt runs DDIM with eta 1 (invert_and_edit)
Scorer = Callable[[torch.Tensor, int, str], torch.Tensor]  # (wav [N, samples], sample rate, prompt) -> [N] scores


@dataclass
class TTAOutput:
    wav: torch.Tensor  # [B, samples]
    mel: torch.Tensor  # [B, n_mels, frames]
    prompts: list[str]
    seeds: list[int]  # the seed each clip was drawn with
    seconds: float  # audio length per clip
    timings: dict[str, float]  # wall seconds of text encoding, diffusion, VAE decoding, vocoder (, scoring)
    scores: list[float] | None = None  # the scorer's value of each kept candidate


def check_duration(seconds: float) -> None:
    if not 0 < seconds <= MAX_SECONDS:
        raise UserError(f"--duration {seconds} must be in (0, {MAX_SECONDS}] seconds")


def clip_generators(seed: int, n: int) -> list[torch.Generator]:
    """One generator per clip, clip i seeded with seed + i (so a clip does not depend on its batch); a seed that
    torch cannot take (negative, or past 64 bits) is a UserError, not an overflow deep inside torch."""
    if int(seed) != seed or not 0 <= seed <= 2**63 - 1 - n:
        raise UserError(f"--seed must be a whole number from 0 to {2**63 - 1 - n}, got {seed}")
    return [torch.Generator().manual_seed(int(seed) + i) for i in range(n)]


def sampler_defaults(sampler: dict[str, Any]) -> dict[str, Any]:
    """A config's `model.sampler` section (name, num_steps, guidance_scale) -> the pipeline's call defaults."""
    return {"sampler": sampler.get("name", "dpm++"), "num_steps": int(sampler.get("num_steps", 25)),
            "guidance_scale": float(sampler.get("guidance_scale", 3.0))}


def make_sampler(name: str, train_scheduler_config: dict[str, Any]):
    """A diffusers sampler built from the training noise schedule (betas, prediction type)."""
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)}")
    cls, extra = SAMPLERS[name]
    return cls.from_config({**train_scheduler_config, **extra})


def load_with_ema(unet: UNet2DConditionModel, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """A checkpoint's U-Net weights, then its EMA weights over the trained parameters when training kept them."""
    unet.load_state_dict(weights)
    if "ema" in state:
        params = [p for p in unet.parameters() if p.requires_grad]
        ema = EMAModel(params)
        ema.load_state_dict(state["ema"])
        ema.copy_to(params)


def save_export(
    out_dir: Path, *, vae, unet: UNet2DConditionModel, text_model, tokenizer, text_config: dict[str, Any],
    noise_scheduler: dict[str, Any], sampler: dict[str, Any], audio: MelConfig, config: dict, vocoder=None, stage: str = STAGE,
    **extra: Any,
) -> None:
    """Write a stage-2 export (the one layout `from_experiment` reads): vae/, unet/, text_encoder/ (model and
    tokenizer together), optional vocoder/, and the artifact json with the schedule and sampler defaults."""
    unet.to(memory_format=torch.contiguous_format).save_pretrained(str(out_dir / "unet"), safe_serialization=True)
    text_model.save_pretrained(str(out_dir / "text_encoder"), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir / "text_encoder"))
    vae.save_pretrained(str(out_dir / "vae"), safe_serialization=True)
    if vocoder is not None:
        vocoder.save_pretrained(str(out_dir / "vocoder"), safe_serialization=True)
    write_artifact(out_dir, stage, config, audio, noise_scheduler=noise_scheduler, sampler=sampler,
                   text_encoder={**text_config, "name_or_path": "text_encoder"}, **extra)


class TTAPipeline:
    stage = STAGE  # the export stage `from_experiment` loads
    how_to_make = HOW_TO_TRAIN

    def __init__(
        self, vae, unet: UNet2DConditionModel, text: TextEncoder, noise_scheduler: dict[str, Any],
        mel_cfg: MelConfig, vocoder=None, sampler_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.vae, self.unet, self.text = vae, unet, text
        self.noise_scheduler = dict(noise_scheduler)
        self.mel_cfg = mel_cfg
        self.vocoder = vocoder if vocoder is not None else GriffinLim(mel_cfg)
        self.defaults = sampler_defaults or {"sampler": "dpm++", "num_steps": 25, "guidance_scale": 3.0}
        self.frame_stride = downsample_factor(vae) * unet_stride(unet)

    @classmethod
    def from_experiment(
        cls, path: str | Path, vocoder: str | None = None, vocoder_path: str | None = None, device: str = "cpu",
        loras: list[tuple[str | Path, float]] | None = None,
    ) -> "TTAPipeline":
        """Load `<exp>/export` (or an export folder) of stage 2, plus a vocoder: by default the export's own
        `vocoder/` (converted published models carry one), else Griffin-Lim. `loras`: (adapter, strength)
        pairs applied on top; a LoRA experiment given as `path` loads its base export with its adapter."""
        loras = list(loras or [])
        if read_stage(path) == LORA_STAGE:  # a LoRA run: its base export, with the adapter at full strength
            loras.insert(0, (path, 1.0))
            path = read_adapter(path)["base"]
        meta, mel_cfg = read_artifact(path, cls.stage, cls.how_to_make)
        root = Path(meta["dir"])
        vae = load_part("VAE", AutoencoderKL.from_pretrained, root / "vae").eval().to(device)
        unet = load_part("U-Net", UNet2DConditionModel.from_pretrained, root / "unet")
        apply_adapters(unet, loras, root)
        unet = unet.eval().to(device)
        text_cfg = TextEncoderConfig(**{**meta["text_encoder"], "name_or_path": str(root / "text_encoder"), "trainable": False})
        text = TextEncoder(text_cfg).to(device)
        own = root / "vocoder"
        if vocoder is None:  # a --vocoder_path names a HiFi-GAN; else the export's own vocoder, else Griffin-Lim
            vocoder = "hifigan" if vocoder_path or own.is_dir() else "griffinlim"
        if vocoder == "hifigan" and vocoder_path is None and own.is_dir():
            vocoder_path = str(own)
        voc = load_vocoder(vocoder, vocoder_path, mel_cfg, device)
        return cls(vae, unet, text, meta["noise_scheduler"], mel_cfg, voc, meta.get("sampler"))

    @classmethod
    def from_checkpoint(cls, step_dir: str | Path, vocoder: str | None = None, vocoder_path: str | None = None, device: str = "cpu") -> "TTAPipeline":
        """A training checkpoint (`<exp>/checkpoints/step_*`), no export needed: the U-Net with the EMA weights
        when training kept them (what an export at that step would hold), the text encoder trained alongside
        it when it was trainable, and the VAE, schedule and audio settings of the run's resolved config."""
        step_dir = Path(step_dir)
        config_file = step_dir.parent.parent / "config.json"
        if not (step_dir / "unet.safetensors").is_file() or not config_file.is_file():
            raise UserError(f"{step_dir} is not a checkpoint of a stage-2 experiment (needs unet.safetensors and {config_file})")
        cfg = read_json(config_file)
        with reading("checkpoint state", step_dir / "state.pt"):
            state = torch.load(step_dir / "state.pt", map_location="cpu", weights_only=True)
        if cfg["model"].get("init_from"):  # a fine-tuning run: its base export, with the step's weights
            pipe = cls.from_experiment(cfg["model"]["init_from"], vocoder, vocoder_path, device)
            if cfg["train"].get("lora"):
                add_lora(pipe.unet, LoraConfig(**cfg["train"]["lora"]))
            with reading("checkpoint U-Net", step_dir / "unet.safetensors"):
                load_with_ema(pipe.unet, load_file(str(step_dir / "unet.safetensors")), state)
            return pipe
        mel_cfg = MelConfig(**cfg["audio"])
        vae = load_vae_export(cfg["model"]["autoencoder_path"])[0].eval().to(device)
        text_cfg = TextEncoderConfig(**{**cfg["text_encoder"], "trainable": False})
        text = TextEncoder(text_cfg)
        if (step_dir / "text.safetensors").is_file():  # trained alongside (saved with save_model: tied weights once)
            with reading("checkpoint text encoder", step_dir / "text.safetensors"):
                load_model(text.model, str(step_dir / "text.safetensors"))
        projected = text_cfg.output == "projected"
        unet = build_unet(UNetConfig(**{**cfg["unet"], "channels_last": False, "gradient_checkpointing": False}),
                          vae.config.latent_channels, text.hidden_size if projected else None)
        with reading("checkpoint U-Net", step_dir / "unet.safetensors"):
            load_with_ema(unet, load_file(str(step_dir / "unet.safetensors")), state)
        defaults = sampler_defaults(cfg["model"]["sampler"])
        voc = load_vocoder(vocoder or ("hifigan" if vocoder_path else "griffinlim"), vocoder_path, mel_cfg, device)
        return cls(vae, unet.eval().to(device), text.to(device), cfg["model"]["noise_scheduler"], mel_cfg, voc, defaults)

    def save(self, out_dir: Path, source: dict[str, Any]) -> None:
        """This pipeline as a stage-2 export (e.g. with LoRA adapters merged), written atomically."""
        vocoder = getattr(self.vocoder, "generator", None)
        with atomic_dir(out_dir) as tmp:
            save_export(tmp, vae=self.vae, unet=self.unet, text_model=self.text.model, tokenizer=self.text.tokenizer,
                        text_config=self.text.cfg.__dict__, noise_scheduler=self.noise_scheduler, sampler=self.defaults,
                        audio=self.mel_cfg, config={"made_from": source}, vocoder=vocoder)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def frames_for(self, seconds: float | None) -> int:
        """Mel frames for `seconds`, rounded to the nearest multiple of the latent stride (at least one)."""
        if seconds is None:
            return self.mel_cfg.target_frames
        check_duration(seconds)
        frames = seconds * self.mel_cfg.sample_rate / self.mel_cfg.hop_length
        return max(self.frame_stride, int(round(frames / self.frame_stride)) * self.frame_stride)

    def predict(self, z: torch.Tensor, t, cond: dict[str, torch.Tensor], guidance: float | None) -> torch.Tensor:
        """U-Net output for latents z [B, ...]; `cond` is `text_condition(...)`, built once per call. With
        guidance it holds [uncond | cond] (2B rows) and both halves run in ONE batched call:
        eps = eps_u + w (eps_c - eps_u) (Ho & Salimans 2022, eq. 6)."""
        z_in = torch.cat([z, z]) if guidance is not None else z
        pred = self.unet(z_in, t, **cond).sample
        if guidance is None:
            return pred
        pred_uncond, pred_cond = pred.chunk(2)
        return pred_uncond + guidance * (pred_cond - pred_uncond)

    def encode_audio(self, wavs: list[np.ndarray], frames: int) -> torch.Tensor:
        """Waveforms [N] each -> latents [B, C, frames / f, n_mels / f] through the shared mel front-end (trimmed
        or silence-padded to `frames`) and the VAE's posterior mode, so the same clip gives the same latent."""
        mel = MelFrontEnd(self.mel_cfg)(torch.from_numpy(np.stack(wavs)).float())
        image = mel_to_image(fit_frames(mel, self.mel_cfg, frames)).to(self.device, self.vae.dtype)
        return self.vae.encode(image).latent_dist.mode() * self.vae.config.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> VAE image [B, 1, frames, n_mels] -> log-mel [B, n_mels, frames]."""
        return image_to_mel(self.vae.decode(z.to(self.vae.dtype) / self.vae.config.scaling_factor).sample)

    @torch.no_grad()
    def round_trip(self, wavs: list[np.ndarray], frames: int) -> torch.Tensor:
        """Waveforms -> their VAE reconstruction as log-mels [B, n_mels, frames]: where every latent edit starts."""
        return self.decode(self.encode_audio(wavs, frames))

    def denoise(
        self, z: torch.Tensor, sched, timesteps: torch.Tensor, text: dict[str, torch.Tensor], guidance: float | None,
        gens: list[torch.Generator], known: torch.Tensor | None = None, mask: torch.Tensor | None = None,
        resample: int = 1, progress: bool = False,
    ) -> torch.Tensor:
        """The one reverse-diffusion loop. With `known`, after every step the latents where `mask` is 0 are
        replaced by `known` noised to the next step (by `known` itself after the last), and each step is taken
        `resample` times, re-noising in between (RePaint)."""
        step_kwargs = {"generator": gens} if "generator" in inspect.signature(sched.step).parameters else {}
        steps = list(timesteps)
        loop = steps
        if progress:
            loop = tqdm(steps, desc="sampling", unit="step")
        for i, t in enumerate(loop):
            t_next = steps[i + 1] if i + 1 < len(steps) else None
            for r in range(resample):
                pred = self.predict(sched.scale_model_input(z, t), t, text, guidance)
                z_next = sched.step(pred, t, z, **step_kwargs).prev_sample
                if known is not None:
                    target = known if t_next is None else sched.add_noise(known, self.noise_like(known, gens), t_next.expand(len(z)))
                    z_next = torch.lerp(target, z_next, mask)
                if r + 1 == resample or t_next is None:
                    break
                z = renoise(sched, z_next, t_next, t, self.noise_like(z, gens))
            z = z_next
        return z

    @staticmethod
    def noise_like(z: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        """Standard normal noise shaped like z [B, ...], row i from generator i on the CPU (same on every device)."""
        return torch.cat([torch.randn((1, *z.shape[1:]), generator=g) for g in gens]).to(z.device, z.dtype)

    @torch.no_grad()
    def __call__(
        self, prompts: list[str], negative_prompt: str | None = None, num_steps: int | None = None,
        guidance_scale: float | None = None, sampler: str | None = None, seed: int = 0,
        duration: float | None = None, num_samples: int = 1, progress: bool = False, edit: Edit | None = None,
        window_overlap: float = 0.5, num_candidates: int = 1, scorer: Scorer | None = None,
    ) -> TTAOutput:
        """Clip i (prompts repeated `num_samples` x `num_candidates` times each) is drawn with seed + i, whatever
        the batch. `edit` starts from a given clip (see editing.py); a `duration` beyond the training length is
        made in windows overlapping by `window_overlap` of a window; with `num_candidates` > 1 `scorer` keeps the
        best of each prompt's candidates."""
        if not prompts or any(not p.strip() for p in prompts):
            raise UserError("empty prompt: give a non-empty --text")
        num_steps, (guidance,) = self.sampling_options(num_steps, guidance_scale=guidance_scale)
        if num_samples < 1:
            raise UserError(f"--num_samples must be at least 1, got {num_samples}")
        if num_candidates < 1 or (num_candidates > 1 and scorer is None):
            raise UserError("--num_candidates above 1 needs a scorer (--clap DIR)" if num_candidates > 1 else "--num_candidates must be at least 1")
        if edit is not None and edit.source_prompt is not None and sampler not in (None, INVERSION_SAMPLER):
            raise UserError(f"--source_prompt inverts the clip with the {INVERSION_SAMPLER} sampler; leave --sampler out (got {sampler})")
        sampler = sampler or self.defaults["sampler"]
        make_sampler(sampler, self.noise_scheduler)  # an unknown name fails before any work
        per_prompt = num_samples * num_candidates
        n_prompts = len(prompts)
        prompts = [p for p in prompts for _ in range(per_prompt)]
        gens = clip_generators(seed, len(prompts))
        seeds = [int(seed) + i for i in range(len(prompts))]

        clock = time.perf_counter()
        timings: dict[str, float] = {}
        text = self.condition(prompts, negative_prompt, guidance)
        guide = guidance if guidance != 1.0 else None
        timings["text"] = time.perf_counter() - clock

        if edit is not None and edit.source_prompt is not None and edit.mode == "audio_to_audio":
            z0, _, _ = self.init_latents(edit, n_prompts, per_prompt)  # checks the edit
            captions = edit.source_captions
            source = self.condition([c for c in captions for _ in range(len(prompts) // len(captions))], negative_prompt, guidance)
            z = self.invert_and_edit(z0, edit.strength, source, text, guide, gens, num_steps, progress)
        elif edit is not None and edit.mode != "continuation":
            z = self.edit_in_place(edit, text, guide, gens, sampler, num_steps, n_prompts, per_prompt, progress)
        else:
            z = self.generate_windows(edit, duration, text, guide, gens, sampler, num_steps, n_prompts, per_prompt,
                                      window_overlap, progress)
        timings["diffusion"] = time.perf_counter() - clock - timings["text"]

        mel = self.decode(z)
        timings["vae_decode"] = time.perf_counter() - clock - sum(timings.values())
        wav = self.vocoder(mel)
        timings["vocoder"] = time.perf_counter() - clock - sum(timings.values())
        out = TTAOutput(wav=wav.float().cpu(), mel=mel.float().cpu(), prompts=prompts, seeds=seeds,
                        seconds=mel.shape[-1] * self.mel_cfg.hop_length / self.mel_cfg.sample_rate, timings=timings)
        if num_candidates > 1:
            out = keep_best(out, scorer, self.mel_cfg.sample_rate, num_candidates)
            timings["scoring"] = time.perf_counter() - clock - sum(timings.values())
        return out

    def sampling_options(self, num_steps: int | None, **scales: float | None) -> tuple[int, tuple[float, ...]]:
        """The step count and guidance scales of a call, the pipeline's defaults where None, checked."""
        num_steps = int(self.defaults["num_steps"] if num_steps is None else num_steps)
        if num_steps < 1:
            raise UserError(f"--num_steps must be at least 1, got {num_steps}")
        values = tuple(float(self.defaults[k] if v is None else v) for k, v in scales.items())
        for name, value in zip(scales, values):
            if not math.isfinite(value) or value < 0:
                raise UserError(f"--{name} must be a finite number >= 0, got {value}")
        return num_steps, values

    def condition(self, prompts: list[str], negative_prompt: str | None, guidance: float) -> dict[str, torch.Tensor]:
        """The U-Net's text inputs, encoded once per call: with guidance the CFG batch [unconditional | conditional]."""
        emb, mask = self.text.encode(prompts)
        if guidance != 1.0:
            uncond = self.text.encode([negative_prompt] * len(prompts)) if negative_prompt else self.text.null(len(prompts))
            emb, mask = join(uncond, (emb, mask))
        return text_condition(self.unet, emb.to(self.device), mask.to(self.device))

    def init_latents(self, edit: Edit, n_prompts: int, per_prompt: int) -> tuple[torch.Tensor, int, float]:
        """The edit's clip(s) as latents, one row per generated clip; the clip's latent frames; its seconds."""
        seconds = check_edit(edit, self.mel_cfg.sample_rate, MAX_SECONDS)
        if len(edit.audio) not in (1, n_prompts):
            raise UserError(f"{len(edit.audio)} init clips for {n_prompts} prompts: give one clip, or one per prompt")
        frames = self.frames_for(seconds)
        z0 = self.encode_audio(edit.audio, frames)
        z0 = z0.repeat_interleave(n_prompts * per_prompt // len(z0), dim=0)
        covered = min(frames, self.mel_cfg.frames(len(edit.audio[0])))  # latent frames made of the clip's own sound
        return z0, covered // downsample_factor(self.vae), seconds

    def edit_in_place(self, edit: Edit, text, guide, gens, sampler: str, num_steps: int, n_prompts: int,
                      per_prompt: int, progress: bool) -> torch.Tensor:
        """Audio-to-audio, inpainting or super-resolution of the clip at its own length."""
        z0, _, seconds = self.init_latents(edit, n_prompts, per_prompt)
        sched = make_sampler(sampler, self.noise_scheduler)
        sched.set_timesteps(num_steps, device=self.device)
        noise = self.noise_like(z0, gens)
        if edit.mode == "audio_to_audio":  # SDEdit: start part-way, from the clip noised to that step
            if edit.strength >= 1:  # from pure noise: the clip does not enter, as in plain generation
                return self.denoise(noise * sched.init_noise_sigma, sched, sched.timesteps, text, guide, gens, progress=progress)
            runs = min(int(num_steps * edit.strength), num_steps)
            begin = (num_steps - runs) * sched.order
            timesteps = sched.timesteps[begin:]
            if len(timesteps) == 0:  # too weak to take a step: the clip's round trip
                return z0
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(begin)
            z = sched.add_noise(z0, noise, timesteps[:1].expand(len(z0)))
            return self.denoise(z, sched, timesteps, text, guide, gens, progress=progress)
        check_masked_sampler(sched, sampler, edit.resample)
        if edit.inpaint:
            mask = time_mask(edit.inpaint, z0.shape[2], downsample_factor(self.vae) * self.mel_cfg.hop_length / self.mel_cfg.sample_rate)
            mask = mask.view(1, 1, -1, 1)
        else:
            mask = frequency_mask(edit.super_resolution, self.mel_cfg, z0.shape[3]).view(1, 1, 1, -1)
        mask = mask.expand_as(z0).to(z0)
        return self.denoise(noise * sched.init_noise_sigma, sched, sched.timesteps, text, guide, gens, z0, mask,
                            edit.resample, progress)

    def invert_and_edit(self, z0: torch.Tensor, strength: float, source, text, guide, gens, num_steps: int,
                        progress: bool) -> torch.Tensor:
        """Audio-to-audio by edit-friendly DDPM inversion. The clip's latent is noised independently to every
        step of the last `strength` of a DDIM schedule with eta 1 (a DDPM on those steps); each step's residual
        r_i = z_(i+1) - mu(z_i | source caption) is kept, and the edit runs z_(i+1) = mu(z_i | text) + r_i from
        the noised clip. The source caption itself therefore gives back the clip's latent exactly; another
        caption changes only what its predictions change. diffusers has DDIM inversion (deterministic, which
        drifts from the clip) but not this one, hence written here on its DDIM step."""
        sched = make_sampler(INVERSION_SAMPLER, self.noise_scheduler)
        sched.set_timesteps(num_steps, device=self.device)
        timesteps = sched.timesteps[num_steps - max(1, min(int(num_steps * strength), num_steps)):]
        noised = [sched.add_noise(z0, self.noise_like(z0, gens), t.expand(len(z0))) for t in timesteps] + [z0]
        mean = lambda z, t, cond: sched.step(self.predict(z, t, cond, guide), t, z, eta=1.0,  # noqa: E731
                                             variance_noise=torch.zeros_like(z)).prev_sample
        bar = tqdm(total=2 * len(timesteps), desc="inverting, then editing", unit="step", disable=not progress)
        residuals = []
        for i, t in enumerate(timesteps):
            residuals.append(noised[i + 1] - mean(noised[i], t, source))
            bar.update()
        z = noised[0]
        for t, r in zip(timesteps, residuals):
            z = mean(z, t, text) + r
            bar.update()
        bar.close()
        return z

    def generate_windows(self, edit: Edit | None, duration: float | None, text, guide, gens, sampler: str,
                         num_steps: int, n_prompts: int, per_prompt: int, overlap: float, progress: bool) -> torch.Tensor:
        """Plain generation, continuation of an init clip and audio longer than the training length: passes of at
        most the training length, each keeping the end of what is already made (or of the clip) and sampling the
        rest as inpainting, joined in latent space so the VAE and vocoder see one continuous clip."""
        f = downsample_factor(self.vae)
        shape = (len(gens), self.vae.config.latent_channels, 0, self.mel_cfg.n_mels // f)
        made = torch.zeros(shape, device=self.device, dtype=self.unet.dtype)
        if edit is not None:
            z0, covered, seconds = self.init_latents(edit, n_prompts, per_prompt)
            if duration is None or duration <= seconds:
                raise UserError(f"continuation: --duration must be longer than {edit.source} ({seconds:.2f} s)")
            made = z0[:, :, :covered]
        total = self.frames_for(duration) // f
        window = self.mel_cfg.target_frames // f
        if not 0 <= overlap < 1:
            raise UserError(f"the window overlap {overlap} must be in [0, 1) of a window")
        stride = unet_stride(self.unet)
        for w in plan_windows(made.shape[2], total, window, int(window * overlap) // stride * stride):
            sched = make_sampler(sampler, self.noise_scheduler)
            sched.set_timesteps(num_steps, device=self.device)
            z = self.noise_like(made.new_empty((*shape[:2], w.frames, shape[3])), gens) * sched.init_noise_sigma
            if w.keep == 0:  # nothing to keep: plain generation
                new = self.denoise(z, sched, sched.timesteps, text, guide, gens, progress=progress)
            else:
                resample = edit.resample if edit is not None else 1
                check_masked_sampler(sched, sampler, resample)
                known = torch.zeros_like(z)
                known[:, :, : w.keep] = made[:, :, made.shape[2] - w.keep:]
                mask = (torch.arange(w.frames, device=z.device) >= w.keep).to(z).view(1, 1, -1, 1).expand_as(z)
                new = self.denoise(z, sched, sched.timesteps, text, guide, gens, known, mask, resample, progress)
            made = torch.cat([made, new[:, :, w.keep:]], dim=2)
        return made


def check_masked_sampler(sched, name: str, resample: int) -> None:
    """Masked edits blend after every step: a sampler whose step is split in stages (Heun) cannot be blended."""
    if sched.order > 1:
        raise UserError(f"--sampler {name} takes two-stage steps and cannot inpaint or continue; use dpm++, ddim or euler")
    if resample > 1 and name not in RESAMPLING_SAMPLERS:
        raise UserError(f"--resample needs a stateless sampler ({' or '.join(RESAMPLING_SAMPLERS)}), not {name}")


def renoise(sched, z: torch.Tensor, t_from, t_to, noise: torch.Tensor) -> torch.Tensor:
    """One forward-diffusion jump q(z_to | z_from) of a variance-preserving schedule (RePaint's resampling)."""
    a = sched.alphas_cumprod.to(z.device)
    ratio = a[int(t_to)] / a[int(t_from)]
    return ratio.sqrt() * z + (1 - ratio).sqrt() * noise



def keep_best(out: TTAOutput, scorer: Scorer, sample_rate: int, num_candidates: int) -> TTAOutput:
    """The best-scoring clip of each group of `num_candidates` consecutive candidates (one prompt's)."""
    keep, scores = [], []
    for start in range(0, len(out.prompts), num_candidates):
        s = scorer(out.wav[start: start + num_candidates], sample_rate, out.prompts[start]).float()
        best = int(s.argmax())
        keep.append(start + best)
        scores.append(float(s[best]))
    return TTAOutput(wav=out.wav[keep], mel=out.mel[keep], prompts=[out.prompts[i] for i in keep],
                     seeds=[out.seeds[i] for i in keep], seconds=out.seconds, timings=out.timings, scores=scores)
