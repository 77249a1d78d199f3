"""The fine-tuning demo's data and measure: teach a trained SynthCaps model a word it never saw ("waterfall" for
its rushing noise) from an own-folder dataset, and check that it hears the word as the taught sound while still
following the prompts it knew. Scored with the SynthCaps attribute analyser, as the demo's evaluation is.

The taught sound is one the demo model already makes well (noise: 15 of 15 held-out clips), so the measure is
the word, not the sound: its bells are mostly heard as tones (1 of 4), and a first run teaching "gamelan" for
bells got 10% (docs/RESULTS.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from evaluation.attributes import CHANCE, AttributeAnalyser
from preprocessors.synthcaps import PATTERNS_BY_TYPE, PITCHES, Attributes, all_combinations, caption, synthesize
from utils.audio import save_wav

NEW_WORD = "waterfall"
NOUNS = ([NEW_WORD], [NEW_WORD])  # the same word in training and held-out phrasings; the frames around it differ
TAUGHT = "noise"  # the sound the word is taught for
PATTERNS = PATTERNS_BY_TYPE[TAUGHT]


def taught(i: int) -> Attributes:
    """The i-th clip of the taught sound: pitches and patterns in turn, every combination equally often."""
    return Attributes(TAUGHT, PITCHES[i % len(PITCHES)], PATTERNS[(i // len(PITCHES)) % len(PATTERNS)])


def write_folder(out: Path, n_new: int, n_replay: int, seconds: float, sample_rate: int, seed: int) -> int:
    """An own-folder dataset as a user would make one: wavs + metadata.csv (file, caption). `n_new` clips of
    the taught sound captioned with the new word (every pitch and pattern in turn), and `n_replay` clips of every sound with their usual captions so that the
    adapter does not unlearn them. Returns the number of clips."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    combos = all_combinations()
    rows = []
    for i in range(n_new + n_replay):
        if i < n_new:
            attrs, nouns = taught(i), NOUNS
        else:
            attrs, nouns = combos[int(rng.integers(len(combos)))], None
        clip_seed = int(rng.integers(2**31))
        name = f"clip_{i:04d}.wav"
        save_wav(out / name, synthesize(attrs, seconds, sample_rate, clip_seed), sample_rate)
        rows.append({"file": name, "caption": caption(attrs, np.random.default_rng(clip_seed + 1), nouns=nouns)})
    with (out / "metadata.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def new_word_prompts(n: int, seed: int) -> list[tuple[str, Attributes]]:
    """Held-out phrasings (never in the folder) of the taught sound with the new word, pitches in turn."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        attrs = taught(i)
        items.append((caption(attrs, rng, heldout=True, nouns=NOUNS), attrs))
    return items


def adherence(pipe, items: list[tuple[str, Attributes]], seed: int = 0, batch_size: int = 20) -> dict:
    """Per-attribute accuracy of the analyser on clips generated for `items`, plus the share heard as each type."""
    analyse = AttributeAnalyser(pipe.mel_cfg)
    got = []
    for start in range(0, len(items), batch_size):
        part = items[start: start + batch_size]
        out = pipe([p for p, _ in part], seed=seed + start)
        got += [analyse(w.numpy()) for w in out.wav]
    result = {a: float(np.mean([g[a] == getattr(want, a) for g, (_, want) in zip(got, items)])) for a in CHANCE}
    result["heard_as"] = {t: float(np.mean([g["sound_type"] == t for g in got])) for t in sorted({g["sound_type"] for g in got})}
    return result
