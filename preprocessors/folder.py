"""Own-folder front-end: audio files + `metadata.csv` or `metadata.jsonl` (columns file, caption); or, for the
AUDIT editor, edit triplets (columns input, output, instruction).

Rows are split into train/valid/test by a seeded shuffle; the same seed gives the same split. Files saved
by spreadsheet programs (UTF-8 with a byte-order mark) read like any other; a row with an empty caption is
skipped and reported; a file listed on several rows is one clip with several captions. Any other non-empty
column (a class label, a source) is kept in the row's `Attributes`, which `data.balance_by` can balance on.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from preprocessors.prepare import Clip, PrepareError, PrepareReport
from utils.io import read_csv, read_jsonl_lines


def read_metadata(raw_dir: Path, columns: tuple[str, ...] = ("file", "caption")) -> list[tuple[str, dict]]:
    """The metadata rows, each with where it is ('metadata.csv:7') for the reports."""
    csv_path, jsonl_path = raw_dir / "metadata.csv", raw_dir / "metadata.jsonl"
    named = " and ".join(f"'{c}'" for c in columns)
    if csv_path.exists():
        reader = read_csv(csv_path)
        if not set(columns) <= set(reader.fieldnames or []):
            raise PrepareError(f"{csv_path}: needs columns {named}, found {reader.fieldnames}")
        return [(f"{csv_path}:{reader.line_num}", row) for row in reader]
    if jsonl_path.exists():
        rows = []
        for n, row in read_jsonl_lines(jsonl_path):
            if not set(columns) <= set(row):
                raise PrepareError(f"{jsonl_path}:{n}: each line needs {named}")
            rows.append((f"{jsonl_path}:{n}", row))
        return rows
    raise PrepareError(f"{raw_dir}: no metadata.csv or metadata.jsonl (columns: {', '.join(columns)})")


def row_text(where: str, row: dict, columns: tuple[str, ...], report: PrepareReport) -> dict[str, str] | None:
    """The row's named columns as stripped text, or None after reporting why the row is skipped: a column that
    is empty or not text, or a CSV row longer than its header (an unquoted comma in a caption, which would
    otherwise cut the caption short without a word)."""
    if None in row:
        report.skipped.append((where, f"{where}: more fields than the header; put a caption that holds a comma in double quotes"))
        return None
    text = {}
    for column in columns:
        value = row[column]
        if not isinstance(value, str) or not value.strip():
            problem = "is empty" if value is None or isinstance(value, str) else f"is {value!r}, not text"
            report.skipped.append((where, f"{where}: '{column}' {problem}"))
            return None
        text[column] = value.strip() if column in ("caption", "instruction") else value
    return text


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
    by_uid: dict[str, Clip] = {}
    present = []
    for where, row in read_metadata(raw_dir):
        text = row_text(where, row, ("file", "caption"), report)
        if text is None:
            continue
        path = raw_dir / text["file"]
        if not path.is_file():
            report.missing.append(str(path))
            continue
        uid = _uid(text["file"])
        meta = {"Dataset": name, "Uid": uid, "Caption": text["caption"]}
        extra = {k: v for k, v in row.items() if k not in ("file", "caption") and v not in (None, "")}
        if extra:
            meta["Attributes"] = extra
        if uid in by_uid:
            by_uid[uid].rows.append(meta)
        else:
            by_uid[uid] = Clip(uid=uid, split="train", rows=[meta], source=path)
            present.append(uid)
    for uid, split in zip(present, split_names(len(present), valid_ratio, test_ratio, seed)):
        by_uid[uid].split = split
    return list(by_uid.values())


def build_triplets(raw_dir: Path, name: str, valid_ratio: float, test_ratio: float, seed: int, report: PrepareReport) -> list[Clip]:
    """Edit triplets: one clip per audio file; each row (Uid: the output clip, Source: the input clip, Caption: the
    instruction) goes with its output clip, whose split it takes."""
    if not raw_dir.is_dir():
        raise PrepareError(f"--raw_dir {raw_dir} is not a folder")
    clips: dict[str, Clip] = {}
    outputs = []
    for where, row in read_metadata(raw_dir, ("input", "output", "instruction")):
        text = row_text(where, row, ("input", "output", "instruction"), report)
        if text is None:
            continue
        paths = [raw_dir / text[k] for k in ("input", "output")]
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            report.missing.extend(absent)
            continue
        instruction = text["instruction"]
        uid_in, uid_out = _uid(text["input"]), _uid(text["output"])
        if uid_in == uid_out:
            report.skipped.append((where, f"{where}: the input and the output are the same file"))
            continue
        for uid, path in ((uid_in, paths[0]), (uid_out, paths[1])):
            clips.setdefault(uid, Clip(uid=uid, split="train", rows=[], source=path))
        if not clips[uid_out].rows:
            outputs.append(uid_out)
        clips[uid_out].rows.append({"Dataset": name, "Uid": uid_out, "Source": uid_in, "Caption": instruction})
    for uid, split in zip(outputs, split_names(len(outputs), valid_ratio, test_ratio, seed)):
        clips[uid].split = split
    return list(clips.values())
