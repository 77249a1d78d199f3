"""The shared preparation step: audio files -> `<dataset_dir>/{wav,mel}` + split metadata, in parallel.

Every dataset front-end (SynthCaps, AudioCaps, own folder) only decides *which* clips exist, where their
audio is and what their captions are; this module does the rest the same way for all of them:
resample/downmix/fit to the segment, check, write `wav/<Uid>.wav` and `mel/<Uid>.npy` atomically, skip
clips already prepared (unless overwrite), report skipped clips with the reason, write the metadata.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from utils.audio import AudioError, fit_samples, load_audio, save_wav
from utils.layout import FINGERPRINT_FILE, SPLIT_FILES
from utils.errors import UserError
from utils.io import atomic_path, read_json, write_json
from utils.log import get_logger
from utils.mel import MelConfig, MelFrontEnd, fit_frames
from utils.schema import PreprocessConfig

log = get_logger("prepare")


class PrepareError(UserError):
    """A user-facing preparation failure (bad input folder, mismatched cache)."""


@dataclass
class Clip:
    """One audio clip to prepare and the metadata rows (one per caption) that point at it."""

    uid: str
    split: str
    rows: list[dict]
    source: Path | None = None  # audio to read; None when `make` writes the wav itself
    make: Callable[[], np.ndarray] | None = field(default=None, repr=False)


@dataclass
class PrepareReport:
    prepared: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or uid, reason)
    missing: list[str] = field(default_factory=list)  # listed in metadata, absent on disk

    def summary(self) -> str:
        return (
            f"{self.prepared} prepared, {self.reused} already prepared, "
            f"{len(self.skipped)} skipped (unusable audio or metadata row), {len(self.missing)} missing on disk"
        )


# Worker state, built once per process by _init_state.
_FRONT_END: MelFrontEnd | None = None
_SETTINGS: tuple[MelConfig, PreprocessConfig, Path] | None = None


def _init_state(mel_cfg: MelConfig, pre_cfg: PreprocessConfig, out_dir: Path) -> None:
    global _FRONT_END, _SETTINGS
    _FRONT_END = MelFrontEnd(mel_cfg)
    _SETTINGS = (mel_cfg, pre_cfg, out_dir)


def _init_pool_worker(mel_cfg: MelConfig, pre_cfg: PreprocessConfig, out_dir: Path) -> None:
    """Pool workers share the cores, so one torch thread each. Only in a pool: preparing in the calling process
    must leave its thread count alone, or everything it runs afterwards (training, benchmarks) runs on one core."""
    torch.set_num_threads(1)
    _init_state(mel_cfg, pre_cfg, out_dir)


def _process(clip: Clip) -> tuple[str, str | None]:
    """Prepare one clip; returns (uid, None) or (uid, reason it was skipped)."""
    assert _FRONT_END is not None and _SETTINGS is not None
    mel_cfg, pre_cfg, out_dir = _SETTINGS
    try:
        wav = clip.make() if clip.make is not None else load_audio(clip.source, mel_cfg.sample_rate)
    except AudioError as err:
        return clip.uid, str(err)
    name = str(clip.source or clip.uid)
    if not np.isfinite(wav).all():
        return clip.uid, f"{name}: audio contains NaN/inf"
    if wav.shape[-1] < pre_cfg.min_seconds * mel_cfg.sample_rate:
        return clip.uid, f"{name}: too short ({wav.shape[-1] / mel_cfg.sample_rate:.2f} s < {pre_cfg.min_seconds} s)"
    if np.abs(wav).max() < pre_cfg.silence_peak:
        return clip.uid, f"{name}: silent (peak below {pre_cfg.silence_peak})"
    wav = fit_samples(wav, mel_cfg.segment_samples)
    mel = fit_frames(_FRONT_END(torch.from_numpy(wav)).numpy(), mel_cfg).astype(np.float32)
    save_wav(out_dir / "wav" / f"{clip.uid}.wav", wav, mel_cfg.sample_rate)
    with atomic_path(out_dir / "mel" / f"{clip.uid}.npy", suffix=".npy") as tmp:
        np.save(tmp, mel)
    return clip.uid, None


def _check_fingerprint(out_dir: Path, mel_cfg: MelConfig, overwrite: bool, generator: str) -> None:
    """Refuse to mix clips of other settings or generators, then stamp the folder as being prepared: the
    stamp says `complete` only once every clip is written (see `_stamp`)."""
    path = out_dir / "mel" / FINGERPRINT_FILE
    if path.exists() and not overwrite:
        stored = read_json(path)
        if stored.get("overwriting"):
            raise PrepareError(
                f"an --overwrite preparation of {out_dir} was interrupted, so its mels mix old and new clips; "
                "re-run with --overwrite"
            )
        if stored.get("fingerprint") != mel_cfg.fingerprint():
            raise PrepareError(
                f"{out_dir / 'mel'} was prepared with other audio settings "
                f"({mel_cfg.differences(stored.get('audio', {}))}); "
                "re-run with --overwrite or use another --processed_dir"
            )
        if stored.get("generator", "") != generator:
            raise PrepareError(
                f"{out_dir} holds audio from {stored.get('generator') or 'an older generator'}, not {generator}; "
                "re-run with --overwrite (or the demo with --fresh) or use another --processed_dir"
            )
    previous = read_json(path) if path.exists() else {}
    _stamp(out_dir, mel_cfg, generator, complete=False, overwriting=overwrite or bool(previous.get("overwriting")))


def _stamp(out_dir: Path, mel_cfg: MelConfig, generator: str, complete: bool, overwriting: bool = False) -> None:
    path = out_dir / "mel" / FINGERPRINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"fingerprint": mel_cfg.fingerprint(), "audio": mel_cfg.__dict__, "generator": generator,
                      "complete": complete, "overwriting": overwriting and not complete})


def prepare_clips(
    clips: list[Clip],
    out_dir: Path,
    mel_cfg: MelConfig,
    pre_cfg: PreprocessConfig,
    overwrite: bool = False,
    report: PrepareReport | None = None,
    generator: str = "",
) -> PrepareReport:
    """Prepare `clips` into out_dir and write one metadata file per split with the rows of usable clips.
    `generator` names the version of a corpus made by code (SynthCaps): clips of another version are not reused."""
    report = report or PrepareReport()
    _check_fingerprint(out_dir, mel_cfg, overwrite, generator)
    ok: set[str] = set()
    todo = []
    for clip in clips:
        if not overwrite and (out_dir / "mel" / f"{clip.uid}.npy").exists() and (out_dir / "wav" / f"{clip.uid}.wav").exists():
            ok.add(clip.uid)
            report.reused += 1
        else:
            todo.append(clip)
    workers = pre_cfg.num_workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(todo)))
    init_args = (mel_cfg, pre_cfg, out_dir)
    bar = tqdm(total=len(todo), desc=f"prepare {out_dir.name}", unit="clip", disable=not todo)
    if workers == 1:
        _init_state(*init_args)
        results = map(_process, todo)
        pool = None
    else:
        pool = mp.get_context("fork" if os.name == "posix" else "spawn").Pool(workers, _init_pool_worker, init_args)
        results = pool.imap_unordered(_process, todo, chunksize=4)
    try:
        for uid, reason in results:
            if reason is None:
                ok.add(uid)
                report.prepared += 1
            else:
                report.skipped.append((uid, reason))
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    for clip in clips:  # an edit triplet's row needs its input clip too
        for row in clip.rows:
            if clip.uid in ok and row.get("Source", clip.uid) not in ok:
                report.skipped.append((row["Uid"], f"the triplet {row['Source']} -> {row['Uid']} ({row['Caption']!r}): "
                                                   f"its input clip {row['Source']} was skipped"))
    for split, filename in SPLIT_FILES.items():
        rows = [row for clip in clips if clip.split == split and clip.uid in ok for row in clip.rows
                if row.get("Source", clip.uid) in ok]
        write_json(out_dir / filename, rows)
    _stamp(out_dir, mel_cfg, generator, complete=True)
    for uid, reason in report.skipped:
        log.warning("skipped %s", reason)
    return report
