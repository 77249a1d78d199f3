"""Waveform I/O: read any format librosa/soundfile can, mono, resampled; fixed-length crop/pad; atomic save."""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from utils.errors import UserError
from utils.io import atomic_write


class AudioError(UserError):
    """An audio file that cannot be used (unreadable, empty, silent, too short)."""


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Float32 mono waveform at `sample_rate`. Raises AudioError naming the file on any read failure."""
    if not Path(path).is_file():
        raise AudioError(f"{path}: not found" if not Path(path).exists() else f"{path}: not a file")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
        wav = wav.mean(axis=1)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        try:  # formats libsndfile lacks (e.g. some mp3) go through librosa's audioread fallback
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wav, sr = librosa.load(str(path), sr=None, mono=True)
        except Exception as err:  # noqa: BLE001 - any decoder failure means "unreadable"
            why = f"{type(err).__name__}: {err}" if str(err) else "no installed decoder reads it"  # audioread's is blank
            raise AudioError(f"{path}: unreadable audio ({why})") from None
    if wav.size == 0:
        raise AudioError(f"{path}: empty audio")
    if sr != sample_rate:
        wav = librosa.resample(wav, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32)


def fit_samples(wav: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad (at the end) to exactly n_samples."""
    if wav.shape[-1] >= n_samples:
        return wav[..., :n_samples]
    return np.pad(wav, [(0, 0)] * (wav.ndim - 1) + [(0, n_samples - wav.shape[-1])])


def save_wav(path: str | Path, wav: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM wav, written atomically."""
    data = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    atomic_write(path, lambda p: sf.write(str(p), data, sample_rate, subtype="PCM_16", format="WAV"), suffix=".wav")
