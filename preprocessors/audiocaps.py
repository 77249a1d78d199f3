"""AudioCaps front-end: official caption tables + a folder of downloaded clips -> prepare.Clip list.

Uid is the common release name `{youtube_id}_{start_ms}_{end_ms}`. Clips with several captions
(val/test have five) produce one metadata row per caption, all pointing at the same mel file.
"""

from __future__ import annotations

from pathlib import Path

from preprocessors.prepare import Clip, PrepareError, PrepareReport
from utils.io import read_csv

TABLES = {"train": "train.csv", "valid": "val.csv", "test": "test.csv"}
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
AUDIO_EXTS = (".wav", ".flac")
CLIP_MS = 10_000


def read_table(path: Path) -> list[dict]:
    """Rows of an AudioCaps CSV (captions may contain commas and quotes, so csv does the parsing)."""
    reader = read_csv(path)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise PrepareError(f"{path}: missing column(s) {missing}; expected {','.join(COLUMNS)}")
    return list(reader)


def candidate_names(row: dict) -> list[str]:
    """File stems a release may use for this clip, most specific first."""
    start_ms = int(float(row["start_time"]) * 1000)
    return [f"{row['youtube_id']}_{start_ms}_{start_ms + CLIP_MS}", f"Y{row['youtube_id']}", row["audiocap_id"]]


def index_audio(raw_dir: Path) -> dict[str, Path]:
    """Stem -> path for every audio file under raw_dir (any depth)."""
    return {p.stem: p for p in sorted(raw_dir.rglob("*")) if p.suffix.lower() in AUDIO_EXTS}


def build_clips(raw_dir: Path, captions_dir: Path, report: PrepareReport) -> list[Clip]:
    if not raw_dir.is_dir():
        raise PrepareError(f"--raw_dir {raw_dir} is not a folder; point it at the downloaded AudioCaps clips")
    audio = index_audio(raw_dir)
    grouped: dict[str, tuple[str, list[dict]]] = {}  # uid -> (split, table rows)
    found_table = False
    for split, table in TABLES.items():
        path = captions_dir / table
        if path.exists():
            found_table = True
            for row in read_table(path):
                grouped.setdefault(candidate_names(row)[0], (split, []))[1].append(row)
    clips = []
    for uid, (split, rows) in grouped.items():
        names = [name for row in rows for name in candidate_names(row)]  # any caption's audiocap_id may name the file
        source = next((audio[n] for n in names if n in audio), None)
        if source is None:
            report.missing.append(f"{split}/{uid}")
            continue
        meta = [{"Dataset": "AudioCaps", "Uid": uid, "Caption": row["caption"].strip()} for row in rows]
        clips.append(Clip(uid=uid, split=split, rows=meta, source=source))
    if not found_table:
        raise PrepareError(f"no caption table ({', '.join(TABLES.values())}) in {captions_dir}; pass --captions_dir")
    return clips
