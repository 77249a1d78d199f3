"""Stage-1 loss (AudioLDM / AUDIT recipe): L1 reconstruction + KL + adaptive hinge patch-GAN.

Terms are returned by name and weighted by `weights[name]` (the logged metric names). KL is summed
over latent elements per clip and divided by the mel's element count, so `kl` weights keep the
references' meaning (they weight a per-clip KL sum against a per-clip L1 sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modules.gan_losses import adaptive_weight, hinge_d_loss, hinge_g_loss


@dataclass(frozen=True)
class VAELossConfig:
    weights: dict[str, float]  # {"rec": 1.0, "kl": 1e-6, "adv": 0.5}
    disc_start: int  # step from which the discriminator trains and the adversarial term counts
    disc_layers: int
    disc_channels: int
    disc_learning_rate: float
    adaptive_weight_max: float

    def __post_init__(self) -> None:
        unknown = set(self.weights) - {"rec", "kl", "adv"}
        if unknown or "rec" not in self.weights:
            raise ValueError(f"loss.weights needs 'rec' (and may have 'kl', 'adv'); unknown: {sorted(unknown)}")


def reconstruction(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    return (x - x_rec).abs().mean()


def kl_term(posterior, x: torch.Tensor) -> torch.Tensor:
    """Per-clip KL sum / mel elements per clip (see module doc)."""
    return posterior.kl().mean() / x[0].numel()


def generator_loss(
    cfg: VAELossConfig, x: torch.Tensor, x_rec: torch.Tensor, posterior, logits_fake: torch.Tensor | None,
    last_layer: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Returns {'loss', 'rec', 'kl', and with a discriminator 'adv', 'adv_weight'}."""
    w = cfg.weights
    terms = {"rec": reconstruction(x, x_rec), "kl": kl_term(posterior, x)}
    loss = w["rec"] * terms["rec"] + w.get("kl", 0.0) * terms["kl"]
    if logits_fake is not None and w.get("adv", 0.0) > 0:
        terms["adv"] = hinge_g_loss(logits_fake)
        terms["adv_weight"] = adaptive_weight(w["rec"] * terms["rec"], terms["adv"], last_layer, cfg.adaptive_weight_max)
        loss = loss + w["adv"] * terms["adv_weight"] * terms["adv"]
    return {"loss": loss, **terms}


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return hinge_d_loss(logits_real, logits_fake)
