"""Text -> audio: the Python API used by the inference script, validation samples and evaluation.

    pipe = TTAPipeline.from_experiment("ckpts/tta/audioldm_demo")   # or a converted AudioLDM / Tango export
    out = pipe(["A high pitched beep repeats"], seed=0)   # out.wav [B, N], out.mel [B, n_mels, T]

Classifier-free guidance runs the unconditional and conditional halves in one batched U-Net call; text is
encoded once per prompt, not per step; VAE decoding and the vocoder run once on the whole batch. Each clip
draws its noise from its own generator (seed + its index), so a clip does not depend on the batch it is in.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
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

from models.base.artifact import read_artifact, read_stage, write_artifact
from models.tta.audioldm import SAMPLER_NAMES
from models.tta.audioldm.model import text_condition, unet_stride
from models.tta.audioldm.text_encoder import TextEncoder, TextEncoderConfig, join
from models.tta.autoencoderkl.model import downsample_factor, image_to_mel
from utils.errors import UserError
from utils.mel import MelConfig

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


@dataclass
class TTAOutput:
    wav: torch.Tensor  # [B, samples]
    mel: torch.Tensor  # [B, n_mels, frames]
    prompts: list[str]
    seconds: float  # audio length per clip
    timings: dict[str, float]  # wall seconds of text encoding, diffusion, VAE decoding, vocoder


def check_duration(seconds: float) -> None:
    if not 0 < seconds <= MAX_SECONDS:
        raise UserError(f"--duration {seconds} must be in (0, {MAX_SECONDS}] seconds")


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
    from diffusers.training_utils import EMAModel

    unet.load_state_dict(weights)
    if "ema" in state:
        params = [p for p in unet.parameters() if p.requires_grad]
        ema = EMAModel(params)
        ema.load_state_dict(state["ema"])
        ema.copy_to(params)


def save_export(
    out_dir: Path, *, vae, unet: UNet2DConditionModel, text_model, tokenizer, text_config: dict[str, Any],
    noise_scheduler: dict[str, Any], sampler: dict[str, Any], audio: MelConfig, config: dict, vocoder=None, **extra: Any,
) -> None:
    """Write a stage-2 export (the one layout `from_experiment` reads): vae/, unet/, text_encoder/ (model and
    tokenizer together), optional vocoder/, and the artifact json with the schedule and sampler defaults."""
    unet.to(memory_format=torch.contiguous_format).save_pretrained(str(out_dir / "unet"), safe_serialization=True)
    text_model.save_pretrained(str(out_dir / "text_encoder"), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir / "text_encoder"))
    vae.save_pretrained(str(out_dir / "vae"), safe_serialization=True)
    if vocoder is not None:
        vocoder.save_pretrained(str(out_dir / "vocoder"), safe_serialization=True)
    write_artifact(out_dir, STAGE, config, audio, noise_scheduler=noise_scheduler, sampler=sampler,
                   text_encoder={**text_config, "name_or_path": "text_encoder"}, **extra)


class TTAPipeline:
    def __init__(
        self, vae, unet: UNet2DConditionModel, text: TextEncoder, noise_scheduler: dict[str, Any],
        mel_cfg: MelConfig, vocoder=None, sampler_defaults: dict[str, Any] | None = None,
    ) -> None:
        from models.vocoder.griffinlim import GriffinLim

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
        from diffusers import AutoencoderKL

        from models.vocoder import load_vocoder

        from models.tta.audioldm.lora import STAGE as LORA_STAGE, apply_adapters, read_adapter

        loras = list(loras or [])
        if read_stage(path) == LORA_STAGE:  # a LoRA run: its base export, with the adapter at full strength
            loras.insert(0, (path, 1.0))
            path = read_adapter(path)["base"]
        meta, mel_cfg = read_artifact(path, STAGE, HOW_TO_TRAIN)
        root = Path(meta["dir"])
        vae = AutoencoderKL.from_pretrained(str(root / "vae")).eval().to(device)
        unet = UNet2DConditionModel.from_pretrained(str(root / "unet"))
        apply_adapters(unet, loras, root)
        unet = unet.eval().to(device)
        text_cfg = TextEncoderConfig(**{**meta["text_encoder"], "name_or_path": str(root / "text_encoder"), "trainable": False})
        text = TextEncoder(text_cfg).to(device)
        own = root / "vocoder"
        if vocoder is None:
            vocoder = "hifigan" if own.is_dir() else "griffinlim"
        if vocoder == "hifigan" and vocoder_path is None and own.is_dir():
            vocoder_path = str(own)
        voc = load_vocoder(vocoder, vocoder_path, mel_cfg, device)
        return cls(vae, unet, text, meta["noise_scheduler"], mel_cfg, voc, meta.get("sampler"))

    @classmethod
    def from_checkpoint(cls, step_dir: str | Path, vocoder: str | None = None, vocoder_path: str | None = None, device: str = "cpu") -> "TTAPipeline":
        """A training checkpoint (`<exp>/checkpoints/step_*`), no export needed: the U-Net with the EMA weights
        when training kept them (what an export at that step would hold), the text encoder trained alongside
        it when it was trainable, and the VAE, schedule and audio settings of the run's resolved config."""
        from safetensors.torch import load_file, load_model

        from models.tta.audioldm.model import UNetConfig, build_unet
        from models.tta.autoencoderkl.model import load_vae_export
        from models.vocoder import load_vocoder
        from utils.io import read_json

        step_dir = Path(step_dir)
        config_file = step_dir.parent.parent / "config.json"
        if not (step_dir / "unet.safetensors").is_file() or not config_file.is_file():
            raise UserError(f"{step_dir} is not a checkpoint of a stage-2 experiment (needs unet.safetensors and {config_file})")
        cfg = read_json(config_file)
        state = torch.load(step_dir / "state.pt", map_location="cpu", weights_only=True)
        if cfg["model"].get("init_from"):  # a fine-tuning run: its base export, with the step's weights
            pipe = cls.from_experiment(cfg["model"]["init_from"], vocoder, vocoder_path, device)
            if cfg["train"].get("lora"):
                from models.tta.audioldm.lora import add_lora
                from utils.schema import LoraConfig

                add_lora(pipe.unet, LoraConfig(**cfg["train"]["lora"]))
            load_with_ema(pipe.unet, load_file(str(step_dir / "unet.safetensors")), state)
            return pipe
        mel_cfg = MelConfig(**cfg["audio"])
        vae = load_vae_export(cfg["model"]["autoencoder_path"])[0].eval().to(device)
        text_cfg = TextEncoderConfig(**{**cfg["text_encoder"], "trainable": False})
        text = TextEncoder(text_cfg)
        if (step_dir / "text.safetensors").is_file():  # trained alongside (saved with save_model: tied weights once)
            load_model(text.model, str(step_dir / "text.safetensors"))
        projected = text_cfg.output == "projected"
        unet = build_unet(UNetConfig(**{**cfg["unet"], "channels_last": False, "gradient_checkpointing": False}),
                          vae.config.latent_channels, text.hidden_size if projected else None)
        load_with_ema(unet, load_file(str(step_dir / "unet.safetensors")), state)
        defaults = sampler_defaults(cfg["model"]["sampler"])
        voc = load_vocoder(vocoder or "griffinlim", vocoder_path, mel_cfg, device)
        return cls(vae, unet.eval().to(device), text.to(device), cfg["model"]["noise_scheduler"], mel_cfg, voc, defaults)

    def save(self, out_dir: Path, source: dict[str, Any]) -> None:
        """This pipeline as a stage-2 export (e.g. with LoRA adapters merged), written atomically."""
        from utils.io import atomic_dir

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

    @torch.no_grad()
    def __call__(
        self, prompts: list[str], negative_prompt: str | None = None, num_steps: int | None = None,
        guidance_scale: float | None = None, sampler: str | None = None, seed: int = 0,
        duration: float | None = None, num_samples: int = 1, progress: bool = False,
    ) -> TTAOutput:
        """Clip i (prompts repeated `num_samples` times each) is drawn with seed + i, whatever the batch."""
        if not prompts or any(not p.strip() for p in prompts):
            raise UserError("empty prompt: give a non-empty --text")
        num_steps = int(num_steps or self.defaults["num_steps"])
        guidance = float(self.defaults["guidance_scale"] if guidance_scale is None else guidance_scale)
        if num_steps < 1:
            raise UserError(f"--num_steps must be at least 1, got {num_steps}")
        sched = make_sampler(sampler or self.defaults["sampler"], self.noise_scheduler)
        prompts = [p for p in prompts for _ in range(num_samples)]
        frames = self.frames_for(duration)
        f = downsample_factor(self.vae)
        shape = (self.vae.config.latent_channels, frames // f, self.mel_cfg.n_mels // f)  # [C, T / f, n_mels / f]
        device = self.device

        # 1. text, once per prompt; CFG batch = [unconditional | conditional]
        clock = time.perf_counter()
        timings: dict[str, float] = {}
        cond = self.text.encode(prompts)
        use_cfg = guidance != 1.0
        if use_cfg:
            uncond = self.text.encode([negative_prompt] * len(prompts)) if negative_prompt else self.text.null(len(prompts))
            emb, mask = join(uncond, cond)
        else:
            emb, mask = cond
        text = text_condition(self.unet, emb.to(device), mask.to(device))  # once, not per sampler step

        timings["text"] = time.perf_counter() - clock

        # 2. reverse diffusion from z_T ~ N(0, sigma_max^2 I); noise drawn on CPU so seeds match across devices,
        #    one generator per clip (diffusers schedulers draw a stochastic step's noise per generator too)
        gens = [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))]
        sched.set_timesteps(num_steps, device=device)
        step_kwargs = {"generator": gens} if "generator" in inspect.signature(sched.step).parameters else {}
        z = torch.cat([torch.randn((1, *shape), generator=g) for g in gens])
        z = (z * sched.init_noise_sigma).to(device, self.unet.dtype)
        steps = sched.timesteps
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc="sampling", unit="step")
        for t in steps:
            pred = self.predict(sched.scale_model_input(z, t), t, text, guidance if use_cfg else None)
            z = sched.step(pred, t, z, **step_kwargs).prev_sample

        timings["diffusion"] = time.perf_counter() - clock - timings["text"]

        # 3. decode latents -> VAE image [B, 1, frames, n_mels] -> log-mel [B, n_mels, frames] -> waveform
        mel = image_to_mel(self.vae.decode(z.to(self.vae.dtype) / self.vae.config.scaling_factor).sample)
        timings["vae_decode"] = time.perf_counter() - clock - sum(timings.values())
        wav = self.vocoder(mel)
        timings["vocoder"] = time.perf_counter() - clock - sum(timings.values())
        seconds = frames * self.mel_cfg.hop_length / self.mel_cfg.sample_rate
        return TTAOutput(wav=wav.float().cpu(), mel=mel.float().cpu(), prompts=prompts, seconds=seconds, timings=timings)
