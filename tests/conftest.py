"""Shared fixtures: repo on sys.path, offline hub, a tiny prepared SynthCaps corpus."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SHARED = REPO.parent / "shared"
AUDIOCAPS_TABLES = SHARED / "data" / "audiocaps"

import torch  # noqa: E402

torch.set_num_threads(2)

# Small audio contract for fast tests: 1.28 s clips, 128 frames.
TINY_AUDIO = ["audio.segment_seconds=1.28", "audio.target_frames=128"]


@pytest.fixture(scope="session")
def tiny_synthcaps(tmp_path_factory) -> Path:
    """A prepared SynthCaps corpus of 48 short clips; returns the processed_dir."""
    from bins.tta.preprocess import main

    out = tmp_path_factory.mktemp("processed")
    sets = [f"--set={s}" for s in TINY_AUDIO + ["preprocess.synthcaps_clips=48", "preprocess.num_workers=1"]]
    assert main(["--dataset", "SynthCaps", "--processed_dir", str(out), *sets]) == 0
    return out
