"""Training checkpoints: one folder per step, written atomically, loaded without executing code.

Layout: <exp>/checkpoints/step_00001000/{<module>.safetensors, state.pt, trainer.json}. A folder is built
under a temporary name and renamed into place, so a kill mid-save leaves the previous checkpoints intact.
Weights are safetensors; optimizer/scheduler/EMA/RNG state is a plain tensor dict read with
torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from models.base.loading import reading
from utils.errors import UserError

STEP_DIR = re.compile(r"^step_(\d{8})$")


def step_dirs(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not ckpt_root.is_dir():
        return []
    return sorted(p for p in ckpt_root.iterdir() if STEP_DIR.match(p.name) and (p / "trainer.json").exists())


def latest(ckpt_root: Path) -> Path | None:
    dirs = step_dirs(ckpt_root)
    return dirs[-1] if dirs else None


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": np_state[2],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]), 0, 0.0))


def save(
    ckpt_root: Path, step: int, modules: dict[str, torch.nn.Module], state: dict[str, Any], meta: dict[str, Any],
) -> Path:
    """Write checkpoint `step` atomically; returns its folder. Half-written folders that a killed save left
    (SIGKILL, the OOM killer; a full-size one holds gigabytes) go first: one run saves into a folder at a time."""
    final = ckpt_root / f"step_{step:08d}"
    tmp = ckpt_root / f".tmp_step_{step:08d}"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    for left in ckpt_root.glob(".tmp_step_*"):
        shutil.rmtree(left, ignore_errors=True)
    tmp.mkdir()
    for name, module in modules.items():  # save_model keeps one copy of tied weights (T5's shared embedding)
        save_model(module, str(tmp / f"{name}.safetensors"), force_contiguous=True)
    torch.save({**state, "rng": rng_state()}, tmp / "state.pt")
    (tmp / "trainer.json").write_text(json.dumps({"step": step, **meta}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


class CheckpointMismatch(UserError):
    """A checkpoint that reads fine but holds other modules than the config builds (other shapes or names)."""


def load(path: Path, modules: dict[str, torch.nn.Module]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load weights into `modules`; returns (state dict, trainer meta). Restores the global RNGs."""
    for name, module in modules.items():
        file = path / f"{name}.safetensors"
        with reading(f"checkpoint's {name}", file):
            try:
                load_model(module, str(file))
            except RuntimeError as err:  # torch's and safetensors' strict-load message; a corrupt file raises otherwise
                if not str(err).startswith("Error(s) in loading state_dict"):
                    raise
                first_problem = (str(err).splitlines()[1:] or [""])[0].strip()[:160]
                raise CheckpointMismatch(f"{file} holds another {name} than this config builds ({first_problem}...)") from None
    with reading("checkpoint state", path / "state.pt"):
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    set_rng_state(state.pop("rng"))
    return state, json.loads((path / "trainer.json").read_text())


def rotate(ckpt_root: Path, keep_last: int, protect: Path | None = None) -> None:
    """Delete all but the newest `keep_last` checkpoints (never the protected, e.g. best, one)."""
    dirs = step_dirs(ckpt_root)
    for old in dirs[: max(0, len(dirs) - keep_last)]:
        if protect is None or old.resolve() != protect.resolve():
            shutil.rmtree(old)
