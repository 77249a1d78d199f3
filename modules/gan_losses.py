"""GAN loss pieces shared by the VAE and the vocoder: hinge/LSGAN terms, the adaptive weight, the start gate."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return ((1.0 - real) ** 2).mean() + (fake**2).mean()


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return ((1.0 - fake) ** 2).mean()


def gan_active(step: int, disc_start: int) -> bool:
    """The discriminator trains, and the adversarial term counts, from step `disc_start` on."""
    return step >= disc_start


def adaptive_weight(rec: torch.Tensor, adv: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """Balance the adversarial gradient against the reconstruction gradient at the decoder's last layer.

    w = ||d rec / d W_last|| / (||d adv / d W_last|| + 1e-4), clamped to [0, max_weight], no gradient (Esser et al.).
    """
    g_rec = torch.autograd.grad(rec, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, last_layer, retain_graph=True)[0]
    weight = g_rec.norm() / (g_adv.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()
