"""Distribution metrics between generated and reference audio in an embedding space.

Offline default embedding ("mel_stats"): per clip, the mean and standard deviation over time of each
log-mel bin of the shared front-end (2 x n_mels dims). It needs no download; it is NOT the PANNs/VGGish
space AudioLDM reports FAD/KL in, so numbers are comparable only between runs of this toolkit.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from utils.mel import MelConfig, MelFrontEnd


class MelStatsEmbedding:
    name = "mel_stats"

    def __init__(self, mel_cfg: MelConfig) -> None:
        self.front = MelFrontEnd(mel_cfg)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        mel = self.front(torch.as_tensor(np.asarray(wav, dtype=np.float32))).numpy()
        return np.concatenate([mel.mean(axis=1), mel.std(axis=1)])

    def spectrum(self, wav: np.ndarray) -> np.ndarray:
        """Mean mel power over time, normalised to a distribution over bins (for the paired KL)."""
        mel = self.front(torch.as_tensor(np.asarray(wav, dtype=np.float32))).numpy().astype(np.float64)
        power = np.exp(2 * mel).mean(axis=1) + 1e-10
        return power / power.sum()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two sets of embeddings [N, D]."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eps = 1e-6 * np.eye(a.shape[1])
    covmean = scipy.linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) between two distributions over the same bins."""
    return float((p * np.log(p / q)).sum())
