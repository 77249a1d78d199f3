import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from utils.mel import MelConfig, MelFrontEnd, fit_frames


def reference_logmel(wav: np.ndarray, cfg: MelConfig, normalize: bool) -> np.ndarray:
    """Independent numpy computation of the documented convention."""
    if normalize:
        wav = wav - wav.mean()
        wav = 0.5 * wav / (np.abs(wav).max() + 1e-8)
    pad = cfg.n_fft // 2
    x = np.pad(wav.astype(np.float64), pad, mode="reflect")
    window = scipy.signal.get_window("hann", cfg.win_length, fftbins=True)  # periodic
    n_frames = 1 + (len(x) - cfg.n_fft) // cfg.hop_length
    frames = np.stack([x[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft] * window for i in range(n_frames)])
    mag = np.abs(np.fft.rfft(frames, axis=1)).T  # [freq, frames]
    fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, norm="slaney", htk=False)
    return np.log(np.maximum(fb @ mag, cfg.log_clamp))


@pytest.mark.parametrize("normalize", [True, False])
def test_matches_independent_computation(normalize):
    cfg = MelConfig(normalize_wav=normalize)
    rng = np.random.default_rng(0)
    n = 16000 + 37
    t = np.arange(n) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n) + 0.1).astype(np.float32)
    ours = MelFrontEnd(cfg)(torch.from_numpy(wav)).numpy()
    ref = reference_logmel(wav, cfg, normalize)
    assert ours.shape == (64, 1 + n // 160) == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_batch_equals_single_and_peak_bin():
    cfg = MelConfig()
    fe = MelFrontEnd(cfg)
    t = torch.arange(8000) / 16000
    wavs = torch.stack([torch.sin(2 * torch.pi * 200 * t), torch.sin(2 * torch.pi * 3000 * t)])
    batch = fe(wavs)
    assert batch.shape == (2, 64, 51)
    torch.testing.assert_close(batch[1], fe(wavs[1]))
    centres = librosa.mel_frequencies(n_mels=66, fmin=0, fmax=8000)[1:-1]
    peaks = centres[batch[:, :, 25].argmax(dim=1).numpy()]
    assert abs(peaks[0] - 200) < 60 and abs(peaks[1] - 3000) < 300


def test_fit_frames_pads_with_silence_and_trims():
    cfg = MelConfig(target_frames=10)
    mel = np.zeros((64, 7), dtype=np.float32)
    out = fit_frames(mel, cfg)
    assert out.shape == (64, 10) and np.allclose(out[:, 7:], np.log(1e-5))
    assert fit_frames(torch.zeros(2, 64, 12), cfg).shape == (2, 64, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"fmax": 9000}, "Nyquist"), ({"hop_length": 2000}, "hop_length <= win_length"), ({"fmin": 8000}, "fmin")],
)
def test_invalid_settings_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MelConfig(**kwargs)


def test_fingerprint_tracks_every_setting():
    assert MelConfig().fingerprint() == MelConfig().fingerprint()
    assert MelConfig().fingerprint() != MelConfig(normalize_wav=False).fingerprint()
