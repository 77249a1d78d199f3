"""AutoencoderKL training task: D step then G step on the same batch once step >= disc_start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.base.task import Task
from models.tta.artifact import write_artifact
from models.tta.data import collate, mel_splits
from models.tta.autoencoderkl import loss as L
from models.tta.autoencoderkl.model import (
    STAGE, MelVAE, VAEModelConfig, build_vae, check_train_crop, check_vae, image_to_mel, load_pretrained_vae,
    mel_to_image,
)
from models.vocoder.griffinlim import GriffinLim
from modules.discriminator import NLayerDiscriminator
from modules.gan_losses import gan_active
from utils.log import get_logger
from utils.schema import BaseConfig

log = get_logger("vae")


@dataclass(frozen=True)
class AutoencoderKLConfig(BaseConfig):
    model: VAEModelConfig
    loss: L.VAELossConfig


class AutoencoderKLTask(Task):
    Config = AutoencoderKLConfig
    cfg: AutoencoderKLConfig
    ema_module = "g"
    collate_fn = staticmethod(collate)

    def datasets(self):
        return mel_splits(self.cfg, self.cfg.model.train_crop_frames)

    def build(self):
        m = self.cfg.model
        if m.pretrained_path:
            vae = load_pretrained_vae(m.pretrained_path, self.cfg.audio)
            log.info("starting from pretrained VAE %s", m.pretrained_path)
        else:
            vae = build_vae(m)
            check_vae(vae, self.cfg.audio, "model")
        check_train_crop(m, vae, self.cfg.audio)
        lc = self.cfg.loss
        disc = NLayerDiscriminator(1, lc.disc_channels, lc.disc_layers)
        self.modules = {"g": MelVAE(vae), "d": disc}
        self.optimizers = {"g": self.adam(vae), "d": self.adam(disc, lc.disc_learning_rate)}
        return self.modules, self.optimizers

    @staticmethod
    def _input(batch: dict) -> torch.Tensor:
        return mel_to_image(batch["mel"])  # [B, n_mels, T] -> [B, 1, T, n_mels]

    def train_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        vae, disc = self.modules["g"], self.modules["d"]
        x = self._input(batch)
        gen = self.step_generator(step, x.device)
        # 1. encode, sample z ~ q(z|x) with the step's generator, decode
        x_rec, posterior = vae(x, generator=gen)
        gan_on = gan_active(step, self.cfg.loss.disc_start) and self.cfg.loss.weights.get("adv", 0.0) > 0
        out: dict[str, torch.Tensor] = {}
        # 2. discriminator step on (real, detached fake)
        if gan_on:
            d_loss = L.discriminator_loss(disc(x), disc(x_rec.detach()))
            self.optim_step("d", d_loss)
            out["d_loss"] = d_loss.detach()
        # 3. generator step: reconstruction + KL (+ adaptive adversarial term)
        last_layer = self.unwrap("g").vae.decoder.conv_out.weight
        logits_fake = self._frozen_disc(x_rec) if gan_on else None
        g = L.generator_loss(self.cfg.loss, x, x_rec, posterior, logits_fake, last_layer)
        self.optim_step("g", g["loss"])
        return {**{k: v.detach() for k, v in g.items()}, **out}

    def _frozen_disc(self, x_rec: torch.Tensor) -> torch.Tensor:
        """D(x_rec) with gradients to x_rec only: the G step must leave D's gradients untouched.

        Uses the unwrapped module so a data-parallel wrapper does not wait for D's gradients.
        """
        disc = self.unwrap("d")
        disc.requires_grad_(False)
        logits = disc(x_rec)
        disc.requires_grad_(True)
        return logits

    def valid_step(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x = self._input(batch)
        x_rec, posterior = self.modules["g"](x, sample=False)
        return {"loss": L.reconstruction(x, x_rec), "mse": ((x - x_rec) ** 2).mean(), "kl": L.kl_term(posterior, x)}

    def log_samples(self, batch: dict, writer, step: int) -> None:
        from utils.plot import mel_figure  # matplotlib: only when samples are logged

        x = self._input(batch)[:2]
        x_rec, _ = self.unwrap("g")(x, sample=False)
        mels = [m.float().cpu().numpy() for pair in zip(image_to_mel(x), image_to_mel(x_rec)) for m in pair]
        titles = [f"{kind} {uid}" for uid in batch["uid"][:2] for kind in ("input", "reconstruction")]
        writer.add_figure("mel/input_vs_reconstruction", mel_figure(mels, titles), step)
        wav = GriffinLim(self.cfg.audio)(image_to_mel(x_rec[:1]))
        writer.add_audio("audio/reconstruction_griffinlim", wav[0].clamp(-1, 1), step, sample_rate=self.cfg.audio.sample_rate)

    @torch.no_grad()
    def latent_std(self) -> float:
        """Std of sampled latents over `model.scale_batches` batches of whole training clips (for the 1/std
        scale factor)."""
        vae = self.unwrap("g").vae.eval()
        ds, _ = mel_splits(self.cfg)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        idx = torch.randperm(len(ds), generator=gen)[: self.cfg.model.scale_batches * self.cfg.train.batch_size]
        zs = []
        for chunk in idx.split(self.cfg.train.batch_size):
            x = mel_to_image(torch.stack([ds[int(i)]["mel"] for i in chunk])).to(self.accelerator.device)
            zs.append(vae.encode(x).latent_dist.sample(generator=gen).float().cpu())
        return float(torch.cat(zs).std())

    def export(self, out_dir: Path, resolved_config: dict) -> None:
        vae = self.unwrap("g").vae
        std = self.latent_std()
        vae.register_to_config(scaling_factor=1.0 / std)
        vae.save_pretrained(str(out_dir / "vae"), safe_serialization=True)
        write_artifact(out_dir, STAGE, resolved_config, self.cfg.audio, latent_std=std)
        log.info("latent std %.4f -> scaling_factor %.4f", std, 1.0 / std)

