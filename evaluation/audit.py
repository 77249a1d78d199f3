"""Scores instruction edits of SynthEdits triplets (rows with their attributes) with the SynthCaps analyser:
whether the edit was made (success) and whether what it should not touch was kept (kept).

  - replace / pitch / pattern: the edited attribute is the target's; the other two are kept;
  - add / drop: the second source is present / absent: the edited clip's level in the mel bands where that source
    dominates the truth (at least 6 dB above the other side) is nearer to the side with it than to the side
    without it; kept: the main sound's attributes, analysed with those bands removed (add) or as it is (drop);
  - inpaint: the span's level within 6 dB of the truth's; super-resolution: the level above the cutoff within 6 dB
    of the truth's; kept: all three attributes.
Beside these, the mean absolute log-mel difference to the true output (mel L1): attributes can be kept by making a
new clip that has them, the L1 falls only by keeping this clip's own sound (what AUDIT claims over zero-shot edits).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
from tqdm import tqdm

from evaluation.attributes import AttributeAnalyser
from preprocessors.synthedits import SUPER_RESOLUTION_HZ
from utils.audio import load_audio
from utils.errors import UserError
from utils.mel import MelConfig, MelFrontEnd

KEYS = ("sound_type", "pitch", "pattern")
EDITED_ATTRIBUTE = {"replace": "sound_type", "pitch": "pitch", "pattern": "pattern"}
SOURCE_MARGIN_DB = 6.0  # a mel band belongs to the second source where it is this much louder with it
LEVEL_TOLERANCE_DB = 6.0


@dataclass
class EditScore:
    success: bool
    kept: bool
    mel_l1: float  # to the true output's log-mel


def _db(x: float) -> float:
    return float(10 * np.log10(x + 1e-12))


class EditScorer:
    def __init__(self, mel_cfg: MelConfig) -> None:
        self.cfg = mel_cfg
        self.analyser = AttributeAnalyser(mel_cfg)
        self.front = MelFrontEnd(mel_cfg)
        self.centres = librosa.mel_frequencies(n_mels=mel_cfg.n_mels + 2, fmin=mel_cfg.fmin, fmax=mel_cfg.fmax)[1:-1]

    def logmel(self, wav: np.ndarray) -> np.ndarray:
        return self.front(torch.as_tensor(np.asarray(wav, dtype=np.float32))).numpy().astype(np.float64)

    def attributes(self, logmel: np.ndarray) -> dict[str, str]:
        return self.analyser.classify(self.analyser.mel_features(logmel))

    def __call__(self, row: dict, edited: np.ndarray, truth_input: np.ndarray, truth_output: np.ndarray) -> EditScore:
        """Score `edited` (a waveform) as the edit of `row`, whose input and output clips are given."""
        mel, mel_in, mel_out = (self.logmel(w) for w in (edited, truth_input, truth_output))
        n = min(m.shape[1] for m in (mel, mel_in, mel_out))
        mel, mel_in, mel_out = mel[:, :n], mel_in[:, :n], mel_out[:, :n]
        return EditScore(*self.made_and_kept(row, mel, mel_in, mel_out), float(np.abs(mel - mel_out).mean()))

    def made_and_kept(self, row: dict, mel: np.ndarray, mel_in: np.ndarray, mel_out: np.ndarray) -> tuple[bool, bool]:
        """(success, kept) of the edited log-mel `mel`, given the truth's input and output log-mels of equal length."""
        edit, want = row["Edit"], row["Output"]
        got = self.attributes(mel)
        kept_all = all(got[k] == want[k] for k in KEYS)
        if edit in EDITED_ATTRIBUTE:
            attr = EDITED_ATTRIBUTE[edit]
            return got[attr] == want[attr], all(got[k] == want[k] for k in KEYS if k != attr)
        if edit in ("add", "drop"):
            with_other, without = (mel_out, mel_in) if edit == "add" else (mel_in, mel_out)
            p_with, p_without = (np.exp(2 * m).mean(axis=1) for m in (with_other, without))
            bands = 10 * np.log10((p_with + 1e-12) / (p_without + 1e-12)) > SOURCE_MARGIN_DB
            level = lambda m: _db(np.exp(2 * m[bands]).mean())  # noqa: E731
            present = level(mel) > (level(with_other) + level(without)) / 2
            if edit == "add":
                masked = mel.copy()
                masked[bands] = mel.min()
                return present, all(a == want[k] for k, a in self.attributes(masked).items())
            return not present, kept_all
        if edit == "inpaint":
            frames = slice(*(int(s * self.cfg.sample_rate / self.cfg.hop_length) for s in row["Span"]))
            region = (slice(None), frames)
        else:  # super_resolution
            region = (self.centres >= SUPER_RESOLUTION_HZ, slice(None))
        diff = _db(np.exp(2 * mel[region]).mean()) - _db(np.exp(2 * mel_out[region]).mean())
        return abs(diff) <= LEVEL_TOLERANCE_DB, kept_all


def summarise(rows: list[dict], scores: list[EditScore]) -> dict[str, dict[str, float]]:
    """Per edit type (and 'all'): success % and kept %, the mean mel L1 to the truth, and the number of clips."""
    out = {}
    for edit in [*dict.fromkeys(r["Edit"] for r in rows), "all"]:
        mine = [s for r, s in zip(rows, scores) if edit in ("all", r["Edit"])]
        out[edit] = {"success": 100.0 * np.mean([s.success for s in mine]), "kept": 100.0 * np.mean([s.kept for s in mine]),
                     "mel_l1": float(np.mean([s.mel_l1 for s in mine])), "clips": len(mine)}
    return out


def pick_rows(rows: list[dict], per_type: int) -> list[dict]:
    """The first `per_type` rows of every edit type (SynthEdits rows carry their attributes)."""
    if rows and "Edit" not in rows[0]:
        raise UserError("these triplets carry no attributes to score (not SynthEdits): the edit evaluation needs "
                        "rows made by --dataset SynthEdits")
    chosen: dict[str, list[dict]] = {}
    for row in rows:
        if len(chosen.setdefault(row["Edit"], [])) < per_type:
            chosen[row["Edit"]].append(row)
    return [r for edit in chosen.values() for r in edit]


class EditEvaluation:
    """The editor and the zero-shot baseline on the same triplets, scored alike."""

    def __init__(self, rows: list[dict], wav_dir: Path, mel_cfg: MelConfig, batch_size: int = 16, seed: int = 0) -> None:
        self.rows, self.batch, self.seed = rows, batch_size, seed
        self.scorer = EditScorer(mel_cfg)
        read = lambda uid: load_audio(wav_dir / f"{uid}.wav", mel_cfg.sample_rate)  # noqa: E731
        self.inputs = [read(r["Source"]) for r in rows]
        self.outputs = [read(r["Uid"]) for r in rows]

    def score(self, edited: list[np.ndarray]) -> dict[str, dict[str, float]]:
        scores = [self.scorer(r, e, i, o) for r, e, i, o in zip(self.rows, edited, self.inputs, self.outputs)]
        return summarise(self.rows, scores)

    def batches(self, make) -> tuple[list[np.ndarray], float]:
        """make(rows, inputs, seed) -> TTAOutput for each batch; the edited waveforms and seconds per clip."""
        wavs, t0 = [], time.perf_counter()
        for start in tqdm(range(0, len(self.rows), self.batch), desc="edit", unit="batch"):
            out = make(self.rows[start: start + self.batch], self.inputs[start: start + self.batch], self.seed + start)
            wavs.extend(w.numpy() for w in out.wav)
        return wavs, (time.perf_counter() - t0) / len(self.rows)

    @torch.no_grad()
    def round_trip(self, pipe) -> dict:
        """The true outputs through the pipeline's VAE and vocoder: what the right answer scores once decoded by them."""
        wavs = []
        for start in range(0, len(self.rows), self.batch):
            part = self.outputs[start: start + self.batch]
            mel = pipe.round_trip(part, pipe.frames_for(len(part[0]) / pipe.mel_cfg.sample_rate))
            wavs.extend(w.numpy() for w in pipe.vocoder(mel).float().cpu())
        return {"scores": self.score(wavs)}

    def editor(self, pipe, **kwargs) -> dict:
        wavs, sec = self.batches(lambda rows, inputs, seed: pipe(inputs, [r["Caption"] for r in rows], seed=seed, **kwargs))
        return {"scores": self.score(wavs), "seconds_per_clip": sec}

    def zero_shot(self, pipe, strengths: tuple[float, ...]) -> dict:
        """Audio-to-audio editing prompted with a caption of the wanted output, per strength; and per edit type
        the strength with the highest success + kept."""
        from models.tta.audioldm.editing import Edit

        runs = {}
        for s in strengths:
            wavs, sec = self.batches(lambda rows, inputs, seed, s=s: pipe([r["OutputCaption"] for r in rows], seed=seed,
                                                                         edit=Edit(inputs, strength=s, source="the triplet's input")))
            runs[s] = {"scores": self.score(wavs), "seconds_per_clip": sec}
        best = {}
        for edit in runs[strengths[0]]["scores"]:
            s = max(strengths, key=lambda s: runs[s]["scores"][edit]["success"] + runs[s]["scores"][edit]["kept"])
            best[edit] = {"strength": s, **runs[s]["scores"][edit]}
        return {"per_strength": {str(s): r for s, r in runs.items()}, "best": best}
