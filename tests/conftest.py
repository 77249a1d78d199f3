"""Shared fixtures: offline hub, a tiny prepared SynthCaps corpus and the tiny models trained on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SHARED = REPO.parent / "shared"
AUDIOCAPS_TABLES = SHARED / "data" / "audiocaps"

import torch  # noqa: E402

# the cores shared among pytest-xdist workers (tools/run_tests.sh runs one per core): tiny models gain more from
# running side by side than from splitting each small op over threads
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, (os.cpu_count() or 2) // _workers))

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


@pytest.fixture(scope="session")
def tiny_vae(tiny_synthcaps, tmp_path_factory) -> Path:
    """A stage-1 export of the debug VAE trained for 2 steps on tiny_synthcaps; returns the experiment dir."""
    from bins.tta.train import main

    out = tmp_path_factory.mktemp("ckpts")
    sets = [f"--set=data.processed_dir={tiny_synthcaps}", f"--set=output_dir={out}", "--set=train.max_steps=2"]
    assert main(["--config", "egs/tta/autoencoderkl/exp_config_debug.json", "--exp_name", "vae", *sets]) == 0
    return out / "vae"


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    """A small T5 encoder + a Unigram tokenizer counted from real AudioCaps captions, saved as a normal HF folder."""
    from standins import save_standin_t5

    return save_standin_t5(tmp_path_factory.mktemp("tiny_t5"), AUDIOCAPS_TABLES / "train.csv")


@pytest.fixture(scope="session")
def tiny_ldm(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path_factory) -> Path:
    """A stage-2 export of the debug LDM (tiny T5) trained for 2 steps; returns the experiment dir."""
    from bins.tta.train import main

    out = tmp_path_factory.mktemp("ldm_ckpts")
    sets = [f"data.processed_dir={tiny_synthcaps}", f"output_dir={out}", f"model.autoencoder_path={tiny_vae}",
            f"text_encoder.name_or_path={tiny_t5}", "unet.cross_attention_dim=32", "train.max_steps=2", "model.valid_samples=0"]
    assert main(["--config", "egs/tta/audioldm/exp_config_debug.json", "--exp_name", "ldm", *[f"--set={s}" for s in sets]]) == 0
    return out / "ldm"
