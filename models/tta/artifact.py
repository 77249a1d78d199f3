"""Inference artifacts: a folder with weights plus `tta_artifact.json` (stage, resolved config, audio contract).

A downstream stage (LDM training, inference) reads its upstream model's settings from here, never from a
copied config, and checks the mel fingerprint so mismatched stages fail loudly.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.io import read_json, write_json
from utils.mel import MelConfig

ARTIFACT_FILE = "tta_artifact.json"
FORMAT_VERSION = 2
# Why an older format cannot be loaded, so the error can say what to do instead of only "unsupported".
RETIRED_FORMATS = {
    1: "its VAE and U-Net read mels as [n_mels, T] images, this version uses AudioLDM's [T, n_mels] layout; "
       "train it again (or convert the published model again)",
}


def weights_fingerprint(folder: Path) -> str:
    """Hash of the safetensors weights in `folder`: ties a cache or an adapter to exactly one set of weights."""
    h = hashlib.sha1()
    for f in sorted(Path(folder).glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def write_artifact(out_dir: Path, stage: str, config: dict, audio: MelConfig, **extra: Any) -> None:
    write_json(
        out_dir / ARTIFACT_FILE,
        {"format_version": FORMAT_VERSION, "stage": stage, "audio": asdict(audio),
         "mel_fingerprint": audio.fingerprint(), "config": config, **extra},
    )


def read_stage(path: str | Path) -> str | None:
    """The stage of the export at `path` (or `path/export`), None if there is none."""
    for cand in (Path(path), Path(path) / "export"):
        if (cand / ARTIFACT_FILE).is_file():
            return read_json(cand / ARTIFACT_FILE).get("stage")
    return None


def newest_experiment(root: Path, stage: str, how_to_make: str) -> Path:
    """The most recently exported experiment of `stage` under `root` (what a command uses when given none)."""
    found = sorted(Path(root).glob(f"*/export/{ARTIFACT_FILE}"), key=lambda p: p.stat().st_mtime)
    found = [p for p in found if read_json(p).get("stage") == stage]
    if not found:
        raise UserError(f"no trained {stage} experiment under {root}; train one with {how_to_make}, or pass --checkpoint_path")
    return found[-1].parent.parent


def read_artifact(path: str | Path, stage: str, how_to_make: str) -> tuple[dict, MelConfig]:
    """The artifact json of an export folder (or of `<exp>/export`), checked to be of `stage`."""
    path = Path(path)
    for cand in (path, path / "export"):
        if (cand / ARTIFACT_FILE).is_file():
            meta = read_json(cand / ARTIFACT_FILE)
            meta["dir"] = str(cand)
            break
    else:
        raise UserError(f"{path} is not an export of stage {stage!r} (no {ARTIFACT_FILE}); create it with: {how_to_make}")
    if meta.get("stage") != stage:
        raise UserError(f"{path} is an export of stage {meta.get('stage')!r}, expected {stage!r}; create one with: {how_to_make}")
    version = meta.get("format_version")
    if version in RETIRED_FORMATS:
        raise UserError(f"{path} was made by an older version of this toolkit (artifact format {version}): {RETIRED_FORMATS[version]}")
    if version != FORMAT_VERSION:
        raise UserError(f"{path}: artifact format {version} is not supported (expected {FORMAT_VERSION})")
    return meta, MelConfig(**meta["audio"])
