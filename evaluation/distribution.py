"""Distribution metrics between generated and reference audio in an embedding space.

Offline default embedding ("mel_stats"): per clip, the mean and standard deviation over time of each
log-mel bin of the shared front-end (2 x n_mels dims). It needs no download; it is NOT the PANNs/VGGish
space AudioLDM reports FD/FAD/KL in, so numbers are comparable only between runs of this toolkit. Those
real embedders live in evaluation/embedders and load from a local checkpoint.
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
        self.sample_rate = mel_cfg.sample_rate

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
    covmean = scipy.linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():  # singular product: regularise as pytorch-fid does
        eps = 1e-6 * np.eye(a.shape[1])
        covmean = scipy.linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return max(0.0, float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean)))  # >= 0 up to rounding


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) between two distributions over the same bins."""
    return float((p * np.log(p / q)).sum())


def as_distribution(probs: np.ndarray) -> np.ndarray:
    """Tagger outputs (e.g. PANNs' 527 sigmoid probabilities) -> a distribution over classes [..., C]."""
    probs = np.asarray(probs, dtype=np.float64) + 1e-10
    return probs / probs.sum(axis=-1, keepdims=True)


def inception_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over class distributions [N, C] (Salimans et al. 2016)."""
    p_yx = as_distribution(probs)
    p_y = p_yx.mean(axis=0, keepdims=True)
    return float(np.exp((p_yx * (np.log(p_yx) - np.log(p_y))).sum(axis=1).mean()))
