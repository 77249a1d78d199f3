"""SynthCaps: a procedurally generated captioned corpus whose captions are measurably true of the audio.

Every clip is a combination of three attributes (sound type, pitch, temporal pattern). Captions are
AudioCaps-style English built from templates; the test split uses sentence frames and synonyms that
never occur in train/valid, so text generalisation can be measured. Generation is seeded per clip, so
any clip can be regenerated alone and the corpus is identical across runs and worker counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from utils.errors import UserError

# Bump when the synthesised audio changes: prepare then refuses to reuse clips of the old version.
GENERATOR = "SynthCaps v2 (noise bands at least 500 Hz wide)"
SOUND_TYPES = ("tone", "buzz", "noise", "bell", "drum")
PITCHES = ("low", "medium", "high")
PATTERNS = ("continuous", "pulses", "rising", "falling")
PATTERNS_BY_TYPE = {
    "tone": PATTERNS,
    "buzz": PATTERNS,
    "noise": ("continuous", "rising", "falling"),
    "bell": ("pulses",),
    "drum": ("pulses",),
}
# Centre frequency ranges (Hz, sampled log-uniformly). Tonal sounds: the fundamental. Noise and drums:
# the centre of the pass band, which spans [c / 1.5, c * 1.5] widened to at least NOISE_MIN_BAND_HZ: a
# 100-375 Hz band fills about 3 mel bins, a near-tone that differs from one only in its frame-to-frame
# flicker, which a VAE smooths away (README "Measured").
TONAL_CENTRES = {"low": (140.0, 260.0), "medium": (500.0, 800.0), "high": (1700.0, 2600.0)}
NOISE_CENTRES = {"low": (150.0, 250.0), "medium": (900.0, 1400.0), "high": (3500.0, 5000.0)}
NOISE_MIN_BAND_HZ = 500.0
SWEEP = 1.26  # rising/falling glide from c / SWEEP to c * SWEEP: pitch class stays unambiguous
BELL_RATIOS = (1.0, 2.76, 5.40, 8.93)  # inharmonic partials of a struck bar/bell
BELL_GAINS = (1.0, 0.5, 0.3, 0.2)


@dataclass(frozen=True)
class Attributes:
    sound_type: str
    pitch: str
    pattern: str

    def as_dict(self) -> dict:
        return {"sound_type": self.sound_type, "pitch": self.pitch, "pattern": self.pattern}


def all_combinations() -> list[Attributes]:
    return [Attributes(t, p, q) for t in SOUND_TYPES for p in PITCHES for q in PATTERNS_BY_TYPE[t]]


# ---------------------------------------------------------------------------------------------- audio


def _ramp_gate(on: np.ndarray, sr: int, ramp_s: float = 0.005) -> np.ndarray:
    """Smooth a 0/1 gate with short linear ramps so pulses do not click."""
    n = max(1, int(ramp_s * sr))
    kernel = np.ones(n) / n
    return np.convolve(on.astype(np.float64), kernel, mode="same")


def _glide(centre: float, pattern: str, n: int) -> np.ndarray:
    """Per-sample frequency multiplier path: flat, or exponential glide up/down."""
    if pattern == "rising":
        return centre * SWEEP ** np.linspace(-1.0, 1.0, n)
    if pattern == "falling":
        return centre * SWEEP ** np.linspace(1.0, -1.0, n)
    return np.full(n, centre)


def _pulse_gate(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    on_s, off_s = rng.uniform(0.08, 0.16), rng.uniform(0.08, 0.16)
    t = np.arange(n) / sr
    start = rng.uniform(0.0, 0.05)
    gate = (((t - start) % (on_s + off_s)) < on_s) & (t >= start)
    return _ramp_gate(gate, sr)


def _strike_envelope(n: int, sr: int, period: float, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Sum of exponentially decaying strikes every `period` seconds."""
    t = np.arange(n) / sr
    env = np.zeros(n)
    for onset in np.arange(rng.uniform(0.0, 0.05), n / sr, period):
        after = t >= onset
        dt = t[after] - onset
        strike = np.minimum(1.0, dt / 0.004) * np.exp(-dt / tau)  # 4 ms attack: a thump, not a click
        env[after] = np.maximum(env[after], strike)
    return env


def _band_noise(n: int, sr: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White noise filtered, frame by frame in the STFT domain, to the band [c / r, c * r]; r is fixed per
    clip (so glides move both edges alike): 1.5, or the r with c0 * r - c0 / r = NOISE_MIN_BAND_HZ."""
    w = NOISE_MIN_BAND_HZ / float(np.median(centres))
    r = max(1.5, (w + np.sqrt(w * w + 4)) / 2)
    n_fft, hop = 512, 128
    noise = rng.standard_normal(n + n_fft)
    frames = 1 + (len(noise) - n_fft) // hop
    window = np.hanning(n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    out = np.zeros(len(noise))
    norm = np.zeros(len(noise))
    for i in range(frames):
        seg = noise[i * hop : i * hop + n_fft] * window
        c = centres[min(i * hop, n - 1)]
        mask = (freqs >= c / r) & (freqs <= c * r)
        out[i * hop : i * hop + n_fft] += np.fft.irfft(np.fft.rfft(seg) * mask, n_fft) * window
        norm[i * hop : i * hop + n_fft] += window**2
    return (out / np.maximum(norm, 1e-3))[:n]


def _phase(freq: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    return 2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 2 * np.pi)


def synthesize(attrs: Attributes, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """One clip as float32 [samples], peak between 0.3 and 0.9."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    nyquist_guard = 0.47 * sample_rate
    lo, hi = (TONAL_CENTRES if attrs.sound_type in ("tone", "buzz", "bell") else NOISE_CENTRES)[attrs.pitch]
    centre = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    freq = _glide(centre, attrs.pattern, n)

    if attrs.sound_type == "tone":
        wav = np.sin(_phase(freq, sample_rate, rng))
    elif attrs.sound_type == "buzz":
        # band-limited sawtooth: every harmonic with 1/k amplitude (2 f0 stays below Nyquist at high pitch)
        phase = _phase(freq, sample_rate, rng)
        wav = np.zeros(n)
        for k in range(1, 64):
            if k * freq.max() >= nyquist_guard:
                break
            wav += np.sin(k * phase) / k
    elif attrs.sound_type == "bell":
        wav = np.zeros(n)
        for ratio, gain in zip(BELL_RATIOS, BELL_GAINS):
            if ratio * centre < nyquist_guard:
                wav += gain * np.sin(_phase(freq * ratio, sample_rate, rng))
        wav *= _strike_envelope(n, sample_rate, rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.3), rng)
    elif attrs.sound_type == "noise":
        wav = _band_noise(n, sample_rate, freq, rng)
    elif attrs.sound_type == "drum":
        wav = _band_noise(n, sample_rate, freq, rng)
        wav *= _strike_envelope(n, sample_rate, rng.uniform(0.22, 0.4), rng.uniform(0.03, 0.06), rng)
    else:
        raise ValueError(f"unknown sound type {attrs.sound_type!r}")

    if attrs.pattern == "pulses" and attrs.sound_type in ("tone", "buzz"):
        wav *= _pulse_gate(n, sample_rate, rng)
    wav = wav / (np.abs(wav).max() + 1e-9) * rng.uniform(0.3, 0.9)
    return wav.astype(np.float32)


# -------------------------------------------------------------------------------------------- captions

NOUNS = {
    "tone": (["tone", "beep", "pure tone"], ["sine wave tone", "electronic tone"]),
    "buzz": (["buzzing", "buzz", "buzzer"], ["electric buzzing", "droning buzz"]),
    "noise": (["hiss", "noise", "static"], ["rushing noise", "white noise"]),
    "bell": (["bell", "chime"], ["ringing bell", "small bell"]),
    "drum": (["drum", "knocking", "tapping"], ["drum beat", "drumming"]),
}
PITCH_WORDS = {
    "low": (["low", "low pitched", "deep", "rumbling", "booming", "low frequency"], ["bass", "very low"]),
    "medium": (
        ["medium pitched", "mid range", "moderately pitched", "medium", "mid frequency", "moderate"],
        ["middle pitched", "mid-pitched"],
    ),
    "high": (["high", "high pitched", "shrill", "squeaky", "high frequency", "sharp"], ["piercing high", "very high"]),
}
PATTERN_PHRASES = {
    "continuous": (["plays steadily", "sounds continuously", "is sustained"], ["goes on without a break", "holds steady throughout"]),
    "pulses": (
        ["repeats several times", "sounds in short bursts", "pulses repeatedly"],
        ["comes and goes rhythmically", "starts and stops over and over"],
    ),
    "rising": (["rises in pitch", "sweeps upward", "gets higher"], ["climbs upward in pitch", "goes up in pitch"]),
    "falling": (["falls in pitch", "sweeps downward", "drops in pitch"], ["slides down in pitch", "goes down in pitch"]),
}
PULSE_PHRASES = {
    "bell": (["rings several times", "chimes repeatedly"], ["is struck again and again", "tolls over and over"]),
    "drum": (["hits repeatedly", "knocks several times"], ["is struck again and again", "beats over and over"]),
}
_FRAMES = (
    ["A {adj} {noun} {vp}", "{Adj} {noun} {vp}", "There is a {adj} {noun} that {vp}"],
    ["We hear a {adj} {noun} which {vp}", "In the recording a {adj} {noun} {vp}", "You can hear a {adj} {noun} that {vp}"],
)
# A test caption already used is redrawn up to this many times, so the test prompts are distinct sentences
# (3 frames x 2 pitch words x 2 nouns x 2 pattern phrases = 24 held-out phrasings per attribute combination;
# the demo corpus's 150 test clips give 150 distinct captions).
DISTINCT_TEST_DRAWS = 20


def pattern_phrases(attrs: Attributes) -> tuple[list[str], list[str]]:
    """The (training, held-out) phrases that say a clip's pattern; a struck sound's pulses have their own verbs."""
    if attrs.pattern == "pulses":
        return PULSE_PHRASES.get(attrs.sound_type, PATTERN_PHRASES["pulses"])
    return PATTERN_PHRASES[attrs.pattern]


def caption(attrs: Attributes, rng: np.random.Generator, heldout: bool = False,
            nouns: tuple[list[str], list[str]] | None = None) -> str:
    """A natural-language caption; `heldout` draws from phrasings reserved for the test split. `nouns`
    (training, held-out) replaces the sound type's nouns and its own pulse verbs (a new word for a sound, in the
    fine-tuning demo)."""
    k = 1 if heldout else 0

    def pick(options: tuple[list[str], list[str]]) -> str:
        return str(rng.choice(options[k]))

    # a struck sound's own pulse verbs ("rings", "knocks") name its type; with a new noun the noun alone should,
    # so its pulses take the generic pulse phrases
    phrases = pattern_phrases(attrs) if nouns is None else PATTERN_PHRASES[attrs.pattern]
    adj = pick(PITCH_WORDS[attrs.pitch])
    text = pick(_FRAMES).format(adj=adj, Adj=adj.capitalize(), noun=pick(nouns or NOUNS[attrs.sound_type]), vp=pick(phrases))
    return text


# ---------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class SynthClip:
    uid: str
    split: str
    attrs: Attributes
    caption: str
    seed: int


def plan_corpus(num_clips: int, seed: int, valid_ratio: float, test_ratio: float) -> list[SynthClip]:
    """Decide every clip (attributes, caption, split, seed) up front; synthesis is then per clip."""
    rng = np.random.default_rng(seed)
    combos = all_combinations()
    n_valid = max(1, int(round(num_clips * valid_ratio)))
    n_test = max(1, int(round(num_clips * test_ratio)))
    if n_valid + n_test >= num_clips:
        raise UserError(f"preprocess.synthcaps_clips={num_clips} is too small for the valid/test ratios")
    clips = []
    for i in range(num_clips):
        attrs = combos[i % len(combos)] if i < len(combos) else combos[int(rng.integers(len(combos)))]
        clips.append((attrs, int(rng.integers(2**31))))
    order = rng.permutation(num_clips)
    splits = {}
    for rank, idx in enumerate(order):
        splits[int(idx)] = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"
    out = []
    used_test: set[str] = set()
    for i, (attrs, clip_seed) in enumerate(clips):
        split = splits[i]
        rng = np.random.default_rng(clip_seed + 1)
        text = caption(attrs, rng, heldout=split == "test")
        if split == "test":
            for _ in range(DISTINCT_TEST_DRAWS):
                if text not in used_test:
                    break
                text = caption(attrs, rng, heldout=True)
            used_test.add(text)
        out.append(SynthClip(f"synthcaps_{i:06d}", split, attrs, text, clip_seed))
    return out


def build_clips(num_clips: int, seconds: float, sample_rate: int, valid_ratio: float, test_ratio: float, seed: int):
    """SynthCaps as prepare.Clip objects (audio made in the worker; rows carry the attributes)."""
    from preprocessors.prepare import Clip  # local: prepare imports torch, synthesis alone does not

    clips = []
    for c in plan_corpus(num_clips, seed, valid_ratio, test_ratio):
        row = {"Dataset": "SynthCaps", "Uid": c.uid, "Caption": c.caption, "Attributes": c.attrs.as_dict()}
        clips.append(Clip(uid=c.uid, split=c.split, rows=[row], make=partial(synthesize, c.attrs, seconds, sample_rate, c.seed)))
    return clips
