import numpy as np
import pytest

from preprocessors.synthcaps import SOUND_TYPES, Attributes, all_combinations, plan_corpus, synthesize

SR = 16000


def dominant_freqs(wav: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    frames = [wav[i : i + n_fft] * np.hanning(n_fft) for i in range(0, len(wav) - n_fft, hop)]
    mags = np.abs(np.fft.rfft(np.stack(frames), axis=1))
    loud = mags.max(axis=1) > 0.1 * mags.max()
    return np.fft.rfftfreq(n_fft, 1 / SR)[mags[loud].argmax(axis=1)]


def centroid(wav: np.ndarray) -> float:
    mag = np.abs(np.fft.rfft(wav))
    return float((np.fft.rfftfreq(len(wav), 1 / SR) * mag).sum() / mag.sum())


def test_deterministic_per_seed():
    a = Attributes("buzz", "medium", "rising")
    np.testing.assert_array_equal(synthesize(a, 1.0, SR, 7), synthesize(a, 1.0, SR, 7))
    assert not np.array_equal(synthesize(a, 1.0, SR, 7), synthesize(a, 1.0, SR, 8))
    assert plan_corpus(30, 1, 0.1, 0.1) == plan_corpus(30, 1, 0.1, 0.1)


@pytest.mark.parametrize("sound_type", ["tone", "buzz", "bell"])
def test_tonal_pitch_classes_are_true(sound_type):
    for seed in range(3):
        low = np.median(dominant_freqs(synthesize(Attributes(sound_type, "low", "pulses" if sound_type == "bell" else "continuous"), 1.5, SR, seed)))
        high = np.median(dominant_freqs(synthesize(Attributes(sound_type, "high", "pulses" if sound_type == "bell" else "continuous"), 1.5, SR, seed)))
        assert 100 <= low <= 330, low
        assert high > 1500, high


@pytest.mark.parametrize("sound_type", ["noise", "drum"])
def test_noise_bands_are_true(sound_type):
    pattern = "pulses" if sound_type == "drum" else "continuous"
    low = centroid(synthesize(Attributes(sound_type, "low", pattern), 1.5, SR, 0))
    med = centroid(synthesize(Attributes(sound_type, "medium", pattern), 1.5, SR, 0))
    high = centroid(synthesize(Attributes(sound_type, "high", pattern), 1.5, SR, 0))
    assert low < 400 < med < 2000 < high


def spread(wav: np.ndarray) -> float:
    """Power-weighted standard deviation of frequency (Hz)."""
    power = np.abs(np.fft.rfft(wav)) ** 2
    f = np.fft.rfftfreq(len(wav), 1 / SR)
    mean = (f * power).sum() / power.sum()
    return float(np.sqrt(((f - mean) ** 2 * power).sum() / power.sum()))


def test_low_noise_is_broadband_not_a_near_tone():
    # a flat band of width W has spread W / sqrt(12); NOISE_MIN_BAND_HZ = 500 gives about 144 Hz, while the
    # plain [c / 1.5, c * 1.5] band at c = 200 Hz (3 mel bins) would give about 48 Hz
    for seed in range(3):
        assert spread(synthesize(Attributes("noise", "low", "continuous"), 1.5, SR, seed)) > 110


def test_rising_and_falling_glide():
    up = dominant_freqs(synthesize(Attributes("tone", "medium", "rising"), 2.0, SR, 3))
    down = dominant_freqs(synthesize(Attributes("tone", "medium", "falling"), 2.0, SR, 3))
    assert up[-1] > 1.4 * up[0] and down[0] > 1.4 * down[-1]


def test_pulses_have_gaps_and_continuous_does_not():
    def silent_fraction(wav):
        env = np.abs(wav[: len(wav) // 160 * 160]).reshape(-1, 160).max(axis=1)
        return float((env < 0.05 * env.max()).mean())

    assert silent_fraction(synthesize(Attributes("tone", "high", "pulses"), 2.0, SR, 1)) > 0.25
    assert silent_fraction(synthesize(Attributes("tone", "high", "continuous"), 2.0, SR, 1)) < 0.02


def test_captions_name_the_attributes_and_test_uses_heldout_phrasing():
    clips = plan_corpus(600, 0, 0.05, 0.1)
    assert {c.split for c in clips} == {"train", "valid", "test"}
    assert {c.attrs for c in clips} == set(all_combinations())
    pitch_words = {
        "low": ("low", "deep", "rumbling", "booming", "bass"),
        "medium": ("medium", "mid", "moderate", "middle"),
        "high": ("high", "shrill", "squeaky", "sharp"),
    }
    for c in clips:
        assert any(w in c.caption.lower() for w in pitch_words[c.attrs.pitch]), c
    train_text = " ".join(c.caption for c in clips if c.split != "test")
    test_caps = [c.caption for c in clips if c.split == "test"]
    assert all(c.startswith(("We hear", "In the recording", "You can hear")) for c in test_caps)
    for heldout in ("We hear", "In the recording", "You can hear", "bass", "very", "middle pitched", "mid-pitched",
                    "piercing", "rushing noise", "white noise", "droning", "climbs upward", "goes up", "goes down", "over and over"):
        assert heldout not in train_text, heldout
    assert set(SOUND_TYPES) == {c.attrs.sound_type for c in clips if c.split == "test"}


def test_test_captions_are_distinct_sentences():
    """The demo corpus's 150 test clips give 150 different held-out prompts (120 are evaluated)."""
    clips = plan_corpus(3000, 1234, 0.05, 0.05)
    test_caps = [c.caption for c in clips if c.split == "test"]
    assert len(test_caps) == 150 and len(set(test_caps)) == 150
