"""Small file helpers: atomic writes (temp name, then rename), reading users' text, CSV and JSON files, file-name slugs."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from utils.errors import UserError


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; it replaces `path` only if the block finishes.

    A kill or an exception mid-write leaves the previous file (if any) untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; it replaces `path` (and whatever was there) only if the
    block finishes. An exception or a kill mid-write leaves the previous folder untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | Path, writer: Callable[[Path], Any], suffix: str = "") -> None:
    with atomic_path(path, suffix) as tmp:
        writer(tmp)


def write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n"))


def read_text(path: str | Path) -> str:
    """A text file as str: UTF-8, with or without the byte-order mark that Excel and Notepad write (else it would
    end up in a column name or a prompt); another encoding is a UserError naming the file, not a traceback."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None


def read_csv(path: str | Path) -> csv.DictReader:
    """The rows of a CSV with a header, read through `read_text` (so a byte-order mark is not part of the first
    column's name, and another encoding is one line)."""
    return csv.DictReader(io.StringIO(read_text(path)))


def read_json(path: str | Path) -> Any:
    """The parsed file; a file that is not valid JSON is a UserError naming it and where it breaks (a config,
    split or stamp edited by hand or cut short), not json's traceback without the file name."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); fix it or create it again") from None


def read_jsonl_lines(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line; a broken line is a UserError naming the file and the line."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number} is not valid JSON ({err}); fix the line or create the file again") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number} is not a JSON object; each line must be one {{...}} row")
        rows.append((number, row))
    return rows


def read_jsonl(path: str | Path) -> list[dict]:
    return [row for _, row in read_jsonl_lines(path)]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write(path, lambda p: p.write_text(text))


def next_run_dir(parent: Path) -> Path:
    """`parent`/001, 002, ...: the next number after those present, for entry points whose default output folder
    must not write over an earlier run's clips (created by the first file written into it)."""
    taken = [int(p.name) for p in parent.iterdir() if p.name.isdigit()] if parent.is_dir() else []
    return parent / f"{max(taken, default=0) + 1:03d}"


def slugify(text: str, max_len: int = 48) -> str:
    """A file-name-safe slug of a prompt ("A man is whistling!" -> "a_man_is_whistling")."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_len].rstrip("_") or "prompt"
