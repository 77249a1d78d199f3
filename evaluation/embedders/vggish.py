"""VGGish (Hershey et al. 2017), the embedding the Frechet Audio Distance (FAD) is defined in.

Network and front-end as the reference release: 16 kHz audio, 25 ms Hann frames every 10 ms, 64 HTK-mel
bands over 125-7500 Hz, log(mel + 0.01), non-overlapping 0.96 s examples of 96 frames, VGG conv stack ->
128-d embedding per example. The layout matches the PyTorch port's (torchvggish) `vggish-10086976.pth` state
dict, loaded with `torch.load(weights_only=True)`. As the `frechet_audio_distance` package computes FAD by
default: the last layer's output before its ReLU, no PCA, and every 0.96 s example of every clip one sample of
the distribution (a clip gives one row per example). tests/test_reference_tools.py checks the front-end, the
embedding and the distance against torchvggish and frechet_audio_distance on the same random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from evaluation.embedders.weights import load_weights

SAMPLE_RATE = 16000
WINDOW, HOP, FFT = 400, 160, 512
MEL_BINS, FMIN, FMAX = 64, 125.0, 7500.0
EXAMPLE_FRAMES = 96


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + hz / 700.0)


def mel_matrix() -> np.ndarray:
    """[FFT // 2 + 1, MEL_BINS] triangles linear in HTK-mel, DC bin excluded (VGGish's mel_features)."""
    bins_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1))
    edges = np.linspace(hz_to_mel(np.array(FMIN)), hz_to_mel(np.array(FMAX)), MEL_BINS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((bins_mel[:, None] - lower) / (center - lower), (upper - bins_mel[:, None]) / (upper - center)))
    weights[0] = 0.0
    return weights.astype(np.float32)


class VGGish(nn.Module):
    """log-mel examples [N, 1, 96, 64] -> embeddings [N, 128]."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128), nn.ReLU(True)
        )
        self.register_buffer("mel", torch.from_numpy(mel_matrix()), persistent=False)
        self.register_buffer("window", torch.hann_window(WINDOW, periodic=True), persistent=False)

    def examples(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [N] at 16 kHz (padded to at least one example) -> [n_examples, 1, 96, 64]."""
        need = WINDOW + HOP * (EXAMPLE_FRAMES - 1)
        if wav.shape[0] < need:
            wav = torch.nn.functional.pad(wav, (0, need - wav.shape[0]))
        frames = wav.unfold(0, WINDOW, HOP) * self.window
        logmel = torch.log(torch.fft.rfft(frames, n=FFT).abs() @ self.mel + 0.01)
        n = logmel.shape[0] // EXAMPLE_FRAMES
        return logmel[: n * EXAMPLE_FRAMES].reshape(n, 1, EXAMPLE_FRAMES, MEL_BINS)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """[N, 1, 96, 64] -> [N, 128], before the final ReLU (FAD's embedding; the module keeps the port's layout)."""
        x = self.features(examples)  # [N, 512, 6, 4]
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # the TF release's channels-last flattening
        return self.embeddings[:-1](x)


def load_vggish(path: str | Path, device: str = "cpu") -> VGGish:
    return load_weights(VGGish(), path, "VGGish", "pass the PyTorch port's vggish-10086976.pth").to(device)


class VGGishEmbedding:
    name = "vggish"
    sample_rate = SAMPLE_RATE

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.model = load_vggish(path, device)
        self.device = device

    @torch.no_grad()
    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """[n_examples, 128]: FAD counts every 0.96 s example as a sample."""
        x = torch.as_tensor(np.asarray(wav, dtype=np.float32), device=self.device).reshape(-1)
        return self.model(self.model.examples(x)).double().cpu().numpy()
