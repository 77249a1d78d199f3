"""Griffin-Lim vocoder: no weights, inverts the shared mel front-end's filterbank (librosa NNLS + GL)."""

from __future__ import annotations

import librosa
import numpy as np
import torch

from utils.mel import MelConfig


class GriffinLim:
    """log-mel [B, n_mels, T] -> waveform [B, T * hop]; same call signature as the HiFi-GAN vocoder."""

    def __init__(self, mel_cfg: MelConfig, n_iter: int = 32) -> None:
        self.mel_cfg = mel_cfg
        self.n_iter = n_iter

    def __call__(self, logmel: torch.Tensor) -> torch.Tensor:
        c = self.mel_cfg
        mel = np.exp(logmel.detach().float().cpu().numpy())
        mag = librosa.feature.inverse.mel_to_stft(
            mel, sr=c.sample_rate, n_fft=c.n_fft, power=1.0, fmin=c.fmin, fmax=c.fmax
        )
        wavs = [
            librosa.griffinlim(
                m, n_iter=self.n_iter, hop_length=c.hop_length, win_length=c.win_length, window="hann",
                center=True, length=(m.shape[-1] - 1) * c.hop_length, random_state=0,
            )
            for m in mag
        ]
        # centred frames: T frames span (T - 1) * hop samples; pad to the vocoder convention of T * hop
        wav = np.pad(np.stack(wavs), ((0, 0), (0, c.hop_length)))
        return torch.from_numpy(wav.astype(np.float32))
