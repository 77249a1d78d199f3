"""PANNs Cnn14 (Kong et al. 2020), the audio tagger AudioLDM reports FD, KL and IS with.

The network and its log-mel front-end are written here: panns-inference ships them, but fetches a labels file
from the network when imported and needs torchlibrosa; tests/test_reference_tools.py shows ours equal to
panns-inference's and to audioldm-eval's copy on the same weights. The layout matches the published checkpoints (`Cnn14_16k_mAP=0.438.pth` for 16 kHz audio, `Cnn14_mAP=0.431.pth`
for 32 kHz), so a user who has one passes its path and the weights load unchanged. The checkpoint is read
with `torch.load(weights_only=True)`: a file from elsewhere cannot run code. Its STFT/mel buffers
(torchlibrosa's) are not needed: the front-end below recomputes them from the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluation.embedders.weights import load_weights


@dataclass(frozen=True)
class PannsConfig:
    sample_rate: int = 16000
    window_size: int = 512
    hop_size: int = 160
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    classes: int = 527


# The settings each published checkpoint was trained with, chosen by the sample rate in its file name.
CHECKPOINT_SETTINGS = {
    "16k": PannsConfig(),
    "32k": PannsConfig(sample_rate=32000, window_size=1024, hop_size=320, fmax=14000.0),
}


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """wav [B, N] at cfg.sample_rate -> (2048-d embedding, 527 AudioSet class logits; sigmoid: probabilities)."""

    def __init__(self, cfg: PannsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.window_size, n_mels=cfg.mel_bins, fmin=cfg.fmin, fmax=cfg.fmax)
        self.register_buffer("mel_basis", torch.from_numpy(mel), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.window_size), persistent=False)
        self.bn0 = nn.BatchNorm2d(cfg.mel_bins)
        widths = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, cfg.classes)

    def logmel(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, 1, frames, mel_bins] in dB (10 log10 of mel power), as torchlibrosa computes it."""
        spec = torch.stft(wav, self.cfg.window_size, self.cfg.hop_size, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True).abs() ** 2
        mel = torch.matmul(self.mel_basis, spec)
        return (10 * torch.log10(mel.clamp(min=1e-10))).transpose(1, 2).unsqueeze(1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn0(self.logmel(wav).transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=2 if i < 5 else 1)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)


def load_cnn14(path: str | Path, device: str = "cpu") -> Cnn14:
    """A Cnn14 checkpoint (`{"model": state_dict}` as published, or a bare state dict) -> eval-mode model.
    The 16 kHz settings are used when the file name says `16k` (as the published 16 kHz file's does)."""
    cfg = CHECKPOINT_SETTINGS["16k" if "16k" in Path(path).name else "32k"]
    model = load_weights(Cnn14(cfg), path, "Cnn14", "pass Cnn14_16k_mAP=0.438.pth (Zenodo record 3987831)", state_key="model",
                         skip_prefixes=("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter."))
    return model.to(device)


MIN_SAMPLES = 32000  # audioldm-eval zero-pads shorter clips to this length


class PannsEmbedding:
    """The distribution-metric interface (see evaluation.distribution) over Cnn14."""

    name = "panns_cnn14"

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.model = load_cnn14(path, device)
        self.sample_rate = self.model.cfg.sample_rate
        self.device = device

    @torch.no_grad()
    def embed_and_classify(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embedding, class logits) of one clip, fed as audioldm-eval feeds it: mean removed, at least 2 s."""
        x = np.asarray(wav, dtype=np.float32).reshape(-1)
        x = np.pad(x - x.mean(), (0, max(0, MIN_SAMPLES - len(x))))
        emb, logits = self.model(torch.as_tensor(x, device=self.device)[None])
        return emb[0].double().cpu().numpy(), logits[0].double().cpu().numpy()

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        return self.embed_and_classify(wav)[0]
