"""The ONLY waveform -> log-mel code, shared by preparation, training, vocoders and evaluation.

AudioLDM's convention, so their published VAE and HiFi-GAN accept our mels: Slaney mel filters,
periodic Hann window, centred frames (reflect padding n_fft/2, so N samples give 1 + N // hop frames),
magnitude spectrum, natural log of clamp(x, log_clamp).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import librosa
import numpy as np
import torch
from torch import nn

from utils.config import changed_keys


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    log_clamp: float = 1e-5
    normalize_wav: bool = True  # AudioLDM: remove the mean, scale the peak to 0.5
    segment_seconds: float = 10.24
    target_frames: int = 1024

    def __post_init__(self) -> None:
        if self.fmax > self.sample_rate / 2:
            raise ValueError(f"audio.fmax={self.fmax} is above Nyquist ({self.sample_rate / 2})")
        if not self.fmin < self.fmax:
            raise ValueError(f"audio.fmin={self.fmin} must be below audio.fmax={self.fmax}")
        if not self.hop_length <= self.win_length <= self.n_fft:
            raise ValueError(
                f"need hop_length <= win_length <= n_fft, got {self.hop_length}, {self.win_length}, {self.n_fft}"
            )
        if self.target_frames <= 0 or self.segment_seconds <= 0:
            raise ValueError("audio.target_frames and audio.segment_seconds must be positive")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    def frames(self, n_samples: int) -> int:
        """Frames of a centred STFT over n_samples."""
        return 1 + n_samples // self.hop_length

    def samples(self, n_frames: int) -> int:
        """Waveform length a vocoder produces for n_frames."""
        return n_frames * self.hop_length

    @property
    def silence(self) -> float:
        """Log-mel value of digital silence; used to pad the frame axis."""
        return float(np.log(self.log_clamp))

    def differences(self, stored: dict) -> str:
        """The settings in which `stored` (the audio block of an earlier preparation or export) differs from these,
        as 'audio.KEY: THERE there, HERE here', so an error names only what to change."""
        return "; ".join(changed_keys({"audio": stored}, {"audio": asdict(self)}))

    def fingerprint(self) -> str:
        """Short hash of every mel setting; caches and artifacts store it to detect mismatches."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney filters, as librosa (and AudioLDM) build them."""
    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)


def normalize_waveform(wav: torch.Tensor) -> torch.Tensor:
    """AudioLDM's per-clip normalisation over the last axis: zero mean, peak 0.5."""
    wav = wav - wav.mean(dim=-1, keepdim=True)
    return 0.5 * wav / (wav.abs().amax(dim=-1, keepdim=True) + 1e-8)


class MelFrontEnd(nn.Module):
    """wav [B, N] or [N] -> log-mel [B, n_mels, 1 + N // hop] (or [n_mels, frames]); runs on any device."""

    def __init__(self, cfg: MelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=True), persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank(cfg)).float(), persistent=False)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """|STFT| [B, n_fft // 2 + 1, frames] with centred, reflect-padded frames."""
        spec = torch.stft(
            wav,
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            win_length=self.cfg.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.abs()

    def forward(self, wav: torch.Tensor, normalize: bool | None = None, soft_floor: bool = False) -> torch.Tensor:
        """`soft_floor` uses log(x + clamp) instead of log(clamp(x)): the same values above the floor, but a
        gradient below it too (a vocoder's loss on near-silent early outputs)."""
        squeeze = wav.dim() == 1
        wav = wav.unsqueeze(0) if squeeze else wav
        wav = wav.float()
        if self.cfg.normalize_wav if normalize is None else normalize:
            wav = normalize_waveform(wav)
        mel = torch.matmul(self.mel_basis, self.magnitude(wav))
        floor = self.cfg.log_clamp
        logmel = torch.log(mel + floor) if soft_floor else torch.log(torch.clamp(mel, min=floor))
        return logmel[0] if squeeze else logmel


def fit_frames(mel: torch.Tensor | np.ndarray, cfg: MelConfig, n_frames: int | None = None):
    """Pad (with silence) or trim the last (frame) axis to n_frames (default: cfg.target_frames)."""
    n_frames = cfg.target_frames if n_frames is None else n_frames
    have = mel.shape[-1]
    if have >= n_frames:
        return mel[..., :n_frames]
    pad = [(0, 0)] * (mel.ndim - 1) + [(0, n_frames - have)]
    if isinstance(mel, np.ndarray):
        return np.pad(mel, pad, constant_values=cfg.silence)
    return torch.nn.functional.pad(mel, (0, n_frames - have), value=cfg.silence)
