"""The fine-tuning demo's data and measure: teach a trained SynthCaps model a word it never saw ("gamelan" for
its bells) from an own-folder dataset, and check that it hears the word as the taught sound while still
following the prompts it knew. Scored with the SynthCaps attribute analyser, as the demo's evaluation is."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from evaluation.attributes import CHANCE, AttributeAnalyser
from preprocessors.synthcaps import PITCHES, Attributes, all_combinations, caption, synthesize
from utils.audio import save_wav

NEW_WORD = "gamelan"
NOUNS = ([NEW_WORD], [NEW_WORD])  # the same word in training and held-out phrasings; the frames around it differ
TAUGHT = "bell"  # the sound the word is taught for


def write_folder(out: Path, n_new: int, n_replay: int, seconds: float, sample_rate: int, seed: int) -> int:
    """An own-folder dataset as a user would make one: wavs + metadata.csv (file, caption). `n_new` bells
    captioned with the new word, and `n_replay` clips of every sound with their usual captions so that the
    adapter does not unlearn them. Returns the number of clips."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    combos = all_combinations()
    rows = []
    for i in range(n_new + n_replay):
        if i < n_new:
            attrs, nouns = Attributes(TAUGHT, PITCHES[i % len(PITCHES)], "pulses"), NOUNS
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
        attrs = Attributes(TAUGHT, PITCHES[i % len(PITCHES)], "pulses")
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
