"""AUDIT training task: the stage-2 diffusion loss on the output clip of each triplet, with the input clip's latent
concatenated to the noisy latent and the instruction as the text (Wang et al. 2023, sec. 3).

It is the text-to-audio task (same trainer, loss, caches, export layout) started from a text-to-audio export whose
U-Net is widened by zero-initialised source channels; the source is replaced by zeros with probability
`model.source_dropout` and the instruction by the null prompt with `model.cfg_dropout`, independently, so both
guidance terms of the editor's sampling are learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from models.tta.audioldm.pipeline import save_export
from models.tta.audioldm.task import SAMPLER_KEYS, AudioLDMConfig, AudioLDMTask, DiffusionConfig
from models.tta.audit.model import editor_unet
from models.tta.audit.pipeline import STAGE, EditorPipeline, editor_defaults
from utils.errors import UserError


@dataclass(frozen=True)
class EditorConfig(DiffusionConfig):
    source_dropout: float  # probability of training a row without its source clip (the source guidance's ∅)
    source_lr_scale: float  # the U-Net's input convolution (which holds the zero-initialised source channels) learns this much faster
    sampler_keys: ClassVar[tuple[str, ...]] = (*SAMPLER_KEYS, "source_guidance_scale")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.source_dropout < 1:
            raise ValueError(f"model.source_dropout must be in [0, 1), got {self.source_dropout}")
        if self.source_lr_scale <= 0:
            raise ValueError(f"model.source_lr_scale must be above 0, got {self.source_lr_scale}")


@dataclass(frozen=True)
class AuditConfig(AudioLDMConfig):
    model: EditorConfig


class AuditTask(AudioLDMTask):
    Config = AuditConfig
    cfg: AuditConfig
    supports_lora = False  # the source channels of conv_in must train, and an adapter cannot widen a layer

    def __init__(self, cfg: AuditConfig, accelerator) -> None:
        if not cfg.model.init_from:
            raise UserError("the AUDIT editor starts from a text-to-audio model: give --init_from ckpts/tta/<AudioLDM experiment>")
        if not cfg.model.cache_latents:
            raise UserError("model.cache_latents must be true for AUDIT: both clips of every triplet are encoded once")
        super().__init__(cfg, accelerator)
        self.sampler = editor_defaults(cfg.model.sampler)

    def build_unet(self):
        unet = editor_unet(super().build_unet())
        if self.cfg.unet.channels_last:
            unet.to(memory_format=torch.channels_last)
        return unet

    def unet_lr_scales(self) -> dict[str, float]:
        return {"conv_in.": self.cfg.model.source_lr_scale}

    def datasets(self):
        splits = super().datasets()
        for ds in splits:
            if any("Source" not in row for row in ds.rows):
                raise UserError(f"data.datasets {self.cfg.data.datasets}: rows without a 'Source' clip are captioned clips, not "
                                "edit triplets; prepare triplets with sh egs/tta/audit/run_prepare.sh")
        return splits

    def unet_input(self, zt: torch.Tensor, batch: dict, gen: torch.Generator) -> torch.Tensor:
        # the posterior mean: what the editor's pipeline encodes a given clip to (the mode)
        source = batch["source_posterior"][:, 0].to(zt.device, zt.dtype) * self.scale
        keep = torch.rand(len(source), generator=gen) >= self.cfg.model.source_dropout
        return torch.cat([zt, source * keep.to(source).view(-1, 1, 1, 1)], dim=1)

    def log_samples(self, batch: dict, writer, step: int) -> None:
        from utils.plot import mel_figure  # matplotlib: only when samples are logged

        n = self.cfg.model.valid_samples
        if n <= 0:
            return
        pipe = EditorPipeline(self.vae, self.unwrap("unet"), self.text, self.schedule, self.cfg.audio, sampler_defaults=self.sampler)
        source = batch["source_posterior"][:n, 0].to(self.accelerator.device) * self.scale
        mel = pipe.decode(pipe.edit_latents(source, batch["caption"][:n], seed=self.cfg.seed))
        writer.add_figure("samples/mel", mel_figure([m.float().cpu().numpy() for m in mel], batch["caption"][:n]), step)

    def export(self, out_dir: Path, resolved_config: dict) -> None:
        save_export(
            out_dir, vae=self.vae, unet=self.unwrap("unet"), text_model=self.text.model, tokenizer=self.text.tokenizer,
            text_config=self.text.cfg.__dict__, noise_scheduler=self.schedule, sampler=self.sampler, audio=self.cfg.audio,
            config=resolved_config, vae_artifact=self.vae_meta["dir"], stage=STAGE,
        )
