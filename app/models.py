"""The models the app offers: stage-2 exports, LoRA adapters and AUDIT editors found under an experiments root, and
the loaded pipelines, kept up to a count so switching back is instant and memory stays bounded."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from models.tta.artifact import ARTIFACT_FILE, read_stage
from models.tta.audioldm.pipeline import TTAPipeline
from models.tta.audit.pipeline import STAGE as EDITOR_STAGE, EditorPipeline
from utils.errors import UserError
from utils.log import get_logger

log = get_logger("app")


@dataclass(frozen=True)
class Entry:
    path: Path  # the experiment (or export) folder, as run_inference.sh --checkpoint_path takes it
    stage: str  # "audioldm", "lora" or "audit"
    label: str  # what the dropdown shows: name, stage, dataset, step


def describe(path: Path, meta: dict) -> str:
    config = meta.get("config", {})
    datasets = ",".join(config.get("data", {}).get("datasets", [])) or ("converted" if "made_from" in config or meta.get("source") else "-")
    steps = sorted((path / "checkpoints").glob("step_*")) if (path / "checkpoints").is_dir() else []
    step = f"step {int(steps[-1].name[5:])}" if steps else "no checkpoints"
    return f"{path.name} ({meta['stage']}, {datasets}, {step})"


def find_models(root: Path) -> list[Entry]:
    """Every export under `root` (`<exp>/export/` or a converted export folder itself), newest first."""
    found = []
    for artifact in list(root.glob(f"*/export/{ARTIFACT_FILE}")) + list(root.glob(f"*/{ARTIFACT_FILE}")):
        try:
            meta = json.loads(artifact.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:  # one broken folder must not hide the rest
            log.warning("not offered: %s is unreadable (%s)", artifact, err)
            continue
        if not isinstance(meta, dict) or meta.get("stage") not in ("audioldm", "lora", EDITOR_STAGE):
            continue
        path = artifact.parent.parent if artifact.parent.name == "export" else artifact.parent
        found.append((artifact.stat().st_mtime, Entry(path, meta["stage"], describe(path, meta))))
    return [e for _, e in sorted(found, key=lambda x: -x[0])]


def pipeline_bytes(pipe) -> int:
    """Memory of a loaded pipeline's weights (U-Net, VAE, text encoder, vocoder)."""
    modules = [pipe.unet, pipe.vae, pipe.text.model, getattr(pipe.vocoder, "generator", None)]
    return sum(p.numel() * p.element_size() for m in modules if m is not None for p in m.parameters())


class LoadedModels:
    """Pipelines by (model, adapters) key, the least recently used dropped first: at most `keep` of them and,
    beyond the one in use, at most `max_bytes` of weights together."""

    def __init__(self, keep: int = 2, device: str = "cpu", max_bytes: float = float("inf")) -> None:
        self.keep, self.device, self.max_bytes = keep, device, max_bytes
        self.loaded: OrderedDict[tuple, object] = OrderedDict()

    def get(self, path: Path, loras: tuple[tuple[str, float], ...] = ()):
        key = (str(path), loras)
        if key not in self.loaded:
            if not path.exists():
                raise UserError(f"model {path} no longer exists; refresh the list")
            if read_stage(path) == EDITOR_STAGE:
                self.loaded[key] = EditorPipeline.from_experiment(path, device=self.device)
            else:
                self.loaded[key] = TTAPipeline.from_experiment(path, device=self.device, loras=list(loras))
        self.loaded.move_to_end(key)
        while len(self.loaded) > 1 and (len(self.loaded) > self.keep or
                                        sum(pipeline_bytes(p) for p in self.loaded.values()) > self.max_bytes):
            self.loaded.popitem(last=False)
        return self.loaded[key]
