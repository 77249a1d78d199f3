"""Own-folder front-end: audio files + `metadata.csv` or `metadata.jsonl` (columns file, caption).

Rows are split into train/valid/test by a seeded shuffle; the same seed gives the same split. Files saved
by spreadsheet programs (UTF-8 with a byte-order mark) read like any other; a row with an empty caption is
skipped and reported; a file listed on several rows is one clip with several captions.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from preprocessors.prepare import Clip, PrepareError, PrepareReport


def read_metadata(raw_dir: Path) -> list[dict]:
    csv_path, jsonl_path = raw_dir / "metadata.csv", raw_dir / "metadata.jsonl"
    if csv_path.exists():
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"file", "caption"} <= set(reader.fieldnames or []):
                raise PrepareError(f"{csv_path}: needs columns 'file' and 'caption', found {reader.fieldnames}")
            return list(reader)
    if jsonl_path.exists():
        rows = []
        for n, line in enumerate(jsonl_path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise PrepareError(f"{jsonl_path}:{n}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or "file" not in row or "caption" not in row:
                raise PrepareError(f"{jsonl_path}:{n}: each line needs 'file' and 'caption'")
            rows.append(row)
        return rows
    raise PrepareError(f"{raw_dir}: no metadata.csv or metadata.jsonl (columns: file, caption)")


def _uid(file: str) -> str:
    """A file-system-safe id; when characters had to be replaced, a hash of the original name is appended, so
    'a b.wav' and 'a_b.wav' stay two clips instead of one silently replacing the other."""
    stem = str(Path(file).with_suffix(""))
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_")
    return safe if safe == stem else f"{safe}_{hashlib.sha1(stem.encode()).hexdigest()[:8]}"


def split_names(n: int, valid_ratio: float, test_ratio: float, seed: int) -> list[str]:
    """Seeded split labels for n items; valid and test get at least one item each when n >= 3."""
    n_valid = int(round(n * valid_ratio))
    n_test = int(round(n * test_ratio))
    if n >= 3:
        n_valid, n_test = max(1, n_valid), max(1, n_test)
    labels = ["test"] * n_test + ["valid"] * n_valid + ["train"] * (n - n_test - n_valid)
    order = np.random.default_rng(seed).permutation(n)
    return [labels[int(rank)] for rank in np.argsort(order)]


def build_clips(raw_dir: Path, name: str, valid_ratio: float, test_ratio: float, seed: int, report: PrepareReport) -> list[Clip]:
    if not raw_dir.is_dir():
        raise PrepareError(f"--raw_dir {raw_dir} is not a folder")
    rows = read_metadata(raw_dir)
    by_uid: dict[str, Clip] = {}
    present = []
    for n, row in enumerate(rows, 1):
        path = raw_dir / row["file"]
        if not path.is_file():
            report.missing.append(str(path))
            continue
        caption = str(row["caption"] or "").strip()
        if not caption:
            report.skipped.append((str(path), f"metadata row {n} has an empty caption"))
            continue
        uid = _uid(row["file"])
        meta = {"Dataset": name, "Uid": uid, "Caption": caption}
        if uid in by_uid:
            by_uid[uid].rows.append(meta)
        else:
            by_uid[uid] = Clip(uid=uid, split="train", rows=[meta], source=path)
            present.append(uid)
    for uid, split in zip(present, split_names(len(present), valid_ratio, test_ratio, seed)):
        by_uid[uid].split = split
    return list(by_uid.values())
