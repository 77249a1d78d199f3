"""SynthEdits: (input clip, instruction, output clip) triplets made from SynthCaps sounds, for the AUDIT recipe.

The edit types of AUDIT (Wang et al. 2023) that fit the corpus: add a sound, drop a sound (two-source mixtures),
replace one sound with another, change the pitch, change the temporal pattern, inpaint a span, restore the high
frequencies. Input and output of a triplet share the synthesis seed, so everything the instruction does not
change stays the same sound. Every row keeps the attributes of both sides, so the analyser can check an edit
(evaluation/audit.py). Instructions are varied English; the test split uses phrasings never used in training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from preprocessors.synthcaps import NOUNS, PATTERNS_BY_TYPE, PITCH_WORDS, PITCHES, SOUND_TYPES, Attributes, all_combinations, caption, synthesize
from utils.errors import UserError

GENERATOR = "SynthEdits v1 (on SynthCaps v2)"
EDIT_TYPES = ("add", "drop", "replace", "pitch", "pattern", "inpaint", "super_resolution")
# The second source of add/drop mixtures: a high tonal sound, over a low or medium main sound, so that the two
# occupy different mel bands and the presence of each can be measured.
OTHER_TYPES = ("tone", "bell")
MAIN_PITCHES = ("low", "medium")
INPAINT_SECONDS = 0.8
SUPER_RESOLUTION_HZ = 1000.0  # inputs keep only what lies below; buzz and bell have harmonics/partials above it
SUPER_RESOLUTION_TYPES = ("buzz", "bell")

# (training phrasings, held-out phrasings)
_TEMPLATES = {
    "add": (["Add {other}", "Mix in {other}", "Put {other} on top", "Add {other} in the background"],
            ["Overlay {other}", "Layer {other} over it"]),
    "drop": (["Remove the {other_noun}", "Take out the {other_noun}", "Get rid of the {other_noun}"],
             ["Delete the {other_noun}", "Cut the {other_noun} out"]),
    "replace": (["Replace the {noun} with a {new_noun}", "Swap the {noun} for a {new_noun}", "Turn the {noun} into a {new_noun}"],
                ["Change the {noun} into a {new_noun}", "Substitute a {new_noun} for the {noun}"]),
    "pitch": (["Make the {noun} {pitch}", "Change the {noun} to {pitch}", "Make it {pitch}"],
              ["Give the {noun} a {pitch} sound", "Retune the {noun} to sound {pitch}"]),
    "pattern": (["Make the {noun} {vp}", "Let the {noun} {vp}"], ["Have the {noun} {vp}"]),
    "inpaint": (["Fill in the gap", "Inpaint the missing part", "Restore the missing section", "Fill the silent gap"],
                ["Repair the dropout", "Patch the hole in the audio"]),
    "super_resolution": (["Restore the high frequencies", "Increase the bandwidth", "Bring back the treble", "Upsample the audio"],
                         ["Recover the missing highs", "Make it sound less muffled"]),
}
_PITCH_TARGETS = {
    "low": (["low", "deep", "low pitched"], ["bass", "booming"]),
    "medium": (["medium pitched", "mid range"], ["middle pitched", "moderate"]),
    "high": (["high", "high pitched", "shrill"], ["piercing", "squeaky"]),
}
_PATTERN_VERBS = {
    "continuous": (["play steadily", "sound continuously"], ["go on without a break"]),
    "pulses": (["repeat several times", "sound in short bursts"], ["come and go rhythmically"]),
    "rising": (["rise in pitch", "sweep upward"], ["climb upward in pitch"]),
    "falling": (["fall in pitch", "sweep downward"], ["slide down in pitch"]),
}


@dataclass(frozen=True)
class Triplet:
    uid: str
    split: str
    edit: str
    source: Attributes  # the main sound of the input
    target: Attributes  # the main sound of the output
    other: Attributes | None  # add / drop: the second source
    instruction: str
    caption: str  # a SynthCaps caption of the output: the zero-shot baseline's prompt
    seed: int
    span: tuple[float, float] | None = None  # inpaint: the seconds missing from the input

    def row(self, dataset: str) -> dict:
        out = {"Dataset": dataset, "Uid": f"{self.uid}_out", "Source": f"{self.uid}_in", "Caption": self.instruction,
               "Edit": self.edit, "Input": self.source.as_dict(), "Output": self.target.as_dict(), "OutputCaption": self.caption}
        if self.other is not None:
            out["Other"] = self.other.as_dict()
        if self.span is not None:
            out["Span"] = list(self.span)
        return out


def _pick(rng: np.random.Generator, options: tuple[list[str], list[str]], heldout: bool) -> str:
    return str(rng.choice(options[1 if heldout else 0]))


def _one_of(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _plan_one(edit: str, rng: np.random.Generator, heldout: bool, seconds: float) -> tuple[Attributes, Attributes, Attributes | None, str, tuple | None]:
    """(input's main sound, output's main sound, second source, instruction, span) of one edit."""
    combos = all_combinations()
    noun = lambda a: _pick(rng, NOUNS[a.sound_type], heldout)  # noqa: E731
    words: dict[str, str] = {}
    other, span = None, None
    if edit in ("add", "drop"):
        a = _one_of(rng, [c for c in combos if c.pitch in MAIN_PITCHES])
        t = str(rng.choice(OTHER_TYPES))
        other = Attributes(t, "high", str(rng.choice(PATTERNS_BY_TYPE[t])))
        described = f"{_pick(rng, PITCH_WORDS['high'], heldout)} {noun(other)}"
        words = {"other": f"a {described}", "other_noun": described}
        b = a
    elif edit == "replace":
        a = _one_of(rng, combos)
        b = replace(a, sound_type=str(rng.choice([t for t in SOUND_TYPES if t != a.sound_type and a.pattern in PATTERNS_BY_TYPE[t]])))
        words = {"noun": noun(a), "new_noun": noun(b)}
    elif edit == "pitch":
        a = _one_of(rng, combos)
        b = replace(a, pitch=str(rng.choice([p for p in PITCHES if p != a.pitch])))
        words = {"noun": noun(a), "pitch": _pick(rng, _PITCH_TARGETS[b.pitch], heldout)}
    elif edit == "pattern":
        a = _one_of(rng, [c for c in combos if len(PATTERNS_BY_TYPE[c.sound_type]) > 1])
        b = replace(a, pattern=str(rng.choice([p for p in PATTERNS_BY_TYPE[a.sound_type] if p != a.pattern])))
        words = {"noun": noun(a), "vp": _pick(rng, _PATTERN_VERBS[b.pattern], heldout)}
    elif edit == "inpaint":
        a = b = _one_of(rng, combos)
        margin = min(0.3, (seconds - INPAINT_SECONDS) / 4)  # the gap lies inside the clip, with sound around it
        start = round(float(rng.uniform(margin, seconds - margin - INPAINT_SECONDS)), 2)
        span = (start, round(start + INPAINT_SECONDS, 2))
    else:  # super_resolution
        a = b = _one_of(rng, [c for c in combos if c.sound_type in SUPER_RESOLUTION_TYPES and c.pitch in MAIN_PITCHES])
    instruction = _pick(rng, _TEMPLATES[edit], heldout).format(**words)
    return a, b, other, re.sub(r"\ba ([aeiou])", r"an \1", instruction), span


def plan_triplets(num: int, seed: int, valid_ratio: float, test_ratio: float, seconds: float) -> list[Triplet]:
    """`num` triplets, the edit types in turn; splits by a seeded shuffle, held-out phrasings in test."""
    if seconds <= INPAINT_SECONDS:
        raise UserError(f"SynthEdits clips must be longer than the {INPAINT_SECONDS} s inpainting gap (audio.segment_seconds)")
    rng = np.random.default_rng(seed)
    n_valid, n_test = max(1, int(round(num * valid_ratio))), max(1, int(round(num * test_ratio)))
    if n_valid + n_test >= num:
        raise UserError(f"preprocess.synthcaps_clips={num} triplets is too small for the valid/test ratios")
    order = rng.permutation(num)
    split = {int(i): "test" if r < n_test else "valid" if r < n_test + n_valid else "train" for r, i in enumerate(order)}
    out = []
    for i in range(num):
        edit = EDIT_TYPES[i % len(EDIT_TYPES)]
        clip_seed = int(rng.integers(2**31))
        own = np.random.default_rng(clip_seed + 1)
        heldout = split[i] == "test"
        a, b, other, instruction, span = _plan_one(edit, own, heldout, seconds)
        text = caption(b, own, heldout=heldout)
        if edit == "add":
            text = f"{text}, and a high {NOUNS[other.sound_type][0][0]} sounds over it"
        out.append(Triplet(f"synthedits_{i:06d}", split[i], edit, a, b, other, instruction, text, clip_seed, span))
    return out


# ---------------------------------------------------------------------------------------------- audio


def _mix(main: np.ndarray, other: np.ndarray, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """(main alone, main + other at `gain` of main's peak), scaled alike so that main is the same in both."""
    mixed = main + other / (np.abs(other).max() + 1e-9) * np.abs(main).max() * gain
    k = min(1.0, 0.95 / (np.abs(mixed).max() + 1e-9))
    return (main * k).astype(np.float32), (mixed * k).astype(np.float32)


def _silence(wav: np.ndarray, span: tuple[float, float], sr: int, ramp_s: float = 0.005) -> np.ndarray:
    t = np.arange(len(wav)) / sr
    gain = np.clip(np.maximum(span[0] - t, t - span[1]) / ramp_s, 0.0, 1.0)
    return (wav * gain).astype(np.float32)


def _low_pass(wav: np.ndarray, cutoff_hz: float, sr: int) -> np.ndarray:
    """Everything above the cutoff removed (an ideal filter: what a band-limited recording lacks)."""
    spec = np.fft.rfft(wav)
    spec[np.fft.rfftfreq(len(wav), 1.0 / sr) > cutoff_hz] = 0
    return np.fft.irfft(spec, len(wav)).astype(np.float32)


def synthesize_side(t: Triplet, seconds: float, sr: int, output: bool) -> np.ndarray:
    """The input (output=False) or output waveform of a triplet."""
    if t.edit in ("replace", "pitch", "pattern"):
        return synthesize(t.target if output else t.source, seconds, sr, t.seed)
    main = synthesize(t.source, seconds, sr, t.seed)
    if t.edit in ("add", "drop"):
        gain = float(np.random.default_rng(t.seed + 2).uniform(0.5, 0.9))
        alone, mixed = _mix(main, synthesize(t.other, seconds, sr, t.seed + 3), gain)
        return mixed if output == (t.edit == "add") else alone
    if output:
        return main
    return _silence(main, t.span, sr) if t.edit == "inpaint" else _low_pass(main, SUPER_RESOLUTION_HZ, sr)


def build_clips(num: int, seconds: float, sample_rate: int, valid_ratio: float, test_ratio: float, seed: int, name: str = "SynthEdits"):
    """Two prepare.Clip objects per triplet (input, then output carrying the row)."""
    from preprocessors.prepare import Clip  # local: prepare imports torch, planning alone does not

    clips = []
    for t in plan_triplets(num, seed, valid_ratio, test_ratio, seconds):
        clips.append(Clip(uid=f"{t.uid}_in", split=t.split, rows=[], make=partial(synthesize_side, t, seconds, sample_rate, False)))
        clips.append(Clip(uid=f"{t.uid}_out", split=t.split, rows=[t.row(name)], make=partial(synthesize_side, t, seconds, sample_rate, True)))
    return clips
