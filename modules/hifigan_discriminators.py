"""HiFi-GAN's multi-period and multi-scale discriminators (Kong et al. 2020), returning logits and features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack + output conv; returns (flattened logits, every layer's activations)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into [B, 1, T / p, p] and applies 2-D convs along time."""

    def __init__(self, period: int, channels: int) -> None:
        super().__init__()
        self.period = period
        chans = [1, channels, channels * 4, channels * 16, channels * 32]
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3, 1), (2, 0))) for i in range(4)]
            + [weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), 1, (2, 0)))]
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, (1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)  # [B, 1, T / p, p]
        return _conv_stack(self.convs, self.post, x)


class ScaleDiscriminator(nn.Module):
    def __init__(self, channels: int, use_spectral_norm: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        c = channels
        self.convs = nn.ModuleList([
            norm(nn.Conv1d(1, c, 15, 1, 7)),
            norm(nn.Conv1d(c, c * 2, 41, 2, 20, groups=4)),
            norm(nn.Conv1d(c * 2, c * 4, 41, 2, 20, groups=16)),
            norm(nn.Conv1d(c * 4, c * 8, 41, 4, 20, groups=16)),
            norm(nn.Conv1d(c * 8, c * 8, 5, 1, 2)),
        ])
        self.post = norm(nn.Conv1d(c * 8, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.post, x)


class HiFiGANDiscriminator(nn.Module):
    """MPD (periods 2, 3, 5, 7, 11) + MSD (raw, x/2, x/4). forward(wav [B, 1, T]) -> (logits, features) lists."""

    def __init__(self, channels: int = 32, periods: tuple[int, ...] = (2, 3, 5, 7, 11)) -> None:
        super().__init__()
        self.period_ds = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)
        self.scale_ds = nn.ModuleList(ScaleDiscriminator(channels * 4, use_spectral_norm=i == 0) for i in range(3))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feats = [], []
        for d in self.period_ds:
            out, f = d(wav)
            logits.append(out)
            feats.append(f)
        x = wav
        for i, d in enumerate(self.scale_ds):
            if i > 0:
                x = self.pool(x)
            out, f = d(x)
            logits.append(out)
            feats.append(f)
        return logits, feats


def feature_matching_loss(real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    return sum((r.detach() - f).abs().mean() for rs, fs in zip(real_feats, fake_feats) for r, f in zip(rs, fs))
