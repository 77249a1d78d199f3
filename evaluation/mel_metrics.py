"""Distances between log-mels (reference vs reconstruction / re-analysed vocoder output)."""

from __future__ import annotations

import numpy as np
import torch


def mel_metrics(x: torch.Tensor, x_rec: torch.Tensor) -> dict[str, float]:
    """Mel L1 / MSE and log-spectral distance (dB RMS over mel bins, mean over frames) of log-mels."""
    to_db = 20.0 / np.log(10.0)  # natural-log magnitude -> dB
    lsd = (((x - x_rec) * to_db) ** 2).mean(dim=-2).sqrt().mean()
    return {"mel_l1": float((x - x_rec).abs().mean()), "mel_mse": float(((x - x_rec) ** 2).mean()), "lsd_db": float(lsd)}
