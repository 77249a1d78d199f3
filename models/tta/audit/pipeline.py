"""Clip + instruction -> edited clip: the Python API used by run_edit.sh, evaluation and training samples.

    pipe = EditorPipeline.from_experiment("ckpts/tta/audit_synthedits")
    out = pipe([wav], ["Make the beep higher"], seed=0)   # out.wav [B, N], out.mel [B, n_mels, T]

It is the text-to-audio pipeline (loading, the one sampling loop, VAE decoding, vocoder) with one change: the
U-Net also reads the source clip's latent, and classifier-free guidance runs on both conditions
(InstructPix2Pix, Brooks et al. 2023, eq. 3), the three rows in one batched call:
    eps = eps(∅, ∅) + s_source (eps(∅, source) - eps(∅, ∅)) + s_text (eps(text, source) - eps(∅, source))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.tta.audioldm.editing import check_audio
from models.tta.audioldm.model import text_condition
from models.tta.audioldm.pipeline import MAX_SECONDS, TTAOutput, TTAPipeline, clip_generators, make_sampler
from models.tta.audioldm.text_encoder import join
from models.tta.audit.model import is_editor
from utils.errors import UserError

STAGE = "audit"
HOW_TO_TRAIN = "sh egs/tta/audit/run_train.sh (on triplets from sh egs/tta/audit/run_prepare.sh)"


def editor_defaults(sampler: dict[str, Any]) -> dict[str, Any]:
    """A config's `model.sampler` section -> the editor's call defaults (the text-to-audio ones plus the source scale)."""
    return {"sampler": sampler.get("name", "dpm++"), "num_steps": int(sampler.get("num_steps", 25)),
            "guidance_scale": float(sampler.get("guidance_scale", 3.0)),
            "source_guidance_scale": float(sampler.get("source_guidance_scale", 1.5))}


@dataclass
class EditCondition:
    """The U-Net's inputs besides the noisy latent, for the rows [∅ text, ∅ source | ∅ text, source | text, source]."""

    text: dict[str, torch.Tensor]  # text_condition(...) of 3B rows
    source: torch.Tensor  # [3B, C, T', F'] latents, zeros in the first B rows


class EditorPipeline(TTAPipeline):
    stage = STAGE
    how_to_make = HOW_TO_TRAIN

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not is_editor(self.unet):
            raise UserError("this U-Net takes no source clip: it is a text-to-audio model; use run_inference.sh with it")
        self.defaults = editor_defaults({}) | dict(self.defaults)

    def predict(self, z: torch.Tensor, t, cond: EditCondition, guidance: tuple[float, float]) -> torch.Tensor:
        s_text, s_source = guidance
        z_in = torch.cat([torch.cat([z, z, z]), cond.source], dim=1)
        none, source_only, both = self.unet(z_in, t, **cond.text).sample.chunk(3)
        return none + s_source * (source_only - none) + s_text * (both - source_only)

    @torch.no_grad()
    def edit_latents(self, source: torch.Tensor, instructions: list[str], seed: int = 0, num_steps: int | None = None,
                     guidance_scale: float | None = None, source_guidance_scale: float | None = None,
                     sampler: str | None = None, progress: bool = False) -> torch.Tensor:
        """Source latents [B, C, T', F'] (scaled, as the VAE encodes them) -> edited latents; row i draws its noise
        with seed + i."""
        if not instructions or any(not p.strip() for p in instructions):
            raise UserError("empty instruction: give a non-empty --instruction")
        num_steps, scales = self.sampling_options(num_steps, guidance_scale=guidance_scale, source_guidance_scale=source_guidance_scale)
        sched = make_sampler(sampler or self.defaults["sampler"], self.noise_scheduler)
        sched.set_timesteps(num_steps, device=self.device)
        n = len(instructions)
        emb, mask = self.text.encode(instructions)
        null = self.text.null(n)
        emb, mask = join(join(null, null), (emb, mask))
        cond = EditCondition(text_condition(self.unet, emb.to(self.device), mask.to(self.device)),
                             torch.cat([torch.zeros_like(source), source, source]).to(self.device, self.unet.dtype))
        gens = clip_generators(seed, n)
        z = self.noise_like(source, gens) * sched.init_noise_sigma
        return self.denoise(z, sched, sched.timesteps, cond, scales, gens, progress=progress)

    @torch.no_grad()
    def __call__(self, audio: list[np.ndarray], instructions: list[str], seed: int = 0, source: str = "--audio",
                 **kwargs: Any) -> TTAOutput:
        """Edit each clip (one, or one per instruction; equal lengths) by its instruction; `kwargs` as `edit_latents`."""
        seconds = check_audio(audio, source, self.mel_cfg.sample_rate, MAX_SECONDS)
        if len(audio) not in (1, len(instructions)):
            raise UserError(f"{len(audio)} clips for {len(instructions)} instructions: give one clip, or one per instruction")
        clock = time.perf_counter()
        z_src = self.encode_audio(audio, self.frames_for(seconds))
        z_src = z_src.repeat_interleave(len(instructions) // len(z_src), dim=0)
        timings = {"encode": time.perf_counter() - clock}
        z = self.edit_latents(z_src, instructions, seed=seed, **kwargs)
        timings["diffusion"] = time.perf_counter() - clock - timings["encode"]
        mel = self.decode(z)
        wav = self.vocoder(mel)
        timings["decode"] = time.perf_counter() - clock - sum(timings.values())
        return TTAOutput(wav=wav.float().cpu(), mel=mel.float().cpu(), prompts=list(instructions),
                         seeds=[seed + i for i in range(len(instructions))],
                         seconds=mel.shape[-1] * self.mel_cfg.hop_length / self.mel_cfg.sample_rate, timings=timings)
