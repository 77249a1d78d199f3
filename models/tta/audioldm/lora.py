"""LoRA adapters on the U-Net's attention projections, through diffusers' peft integration.

An adapter is saved alone (`adapter.safetensors` + the artifact json: its rank, alpha, target modules and the
fingerprint of the base U-Net it was trained on), applied at inference on top of that base with a strength,
several at once, or merged into a plain export.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from diffusers import UNet2DConditionModel
from peft import LoraConfig as PeftLoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from models.tta.artifact import read_artifact, weights_fingerprint, write_artifact
from utils.errors import UserError
from utils.mel import MelConfig
from utils.schema import LoraConfig

STAGE = "lora"
ADAPTER_FILE = "adapter.safetensors"
HOW_TO_TRAIN = "sh egs/tta/audioldm/run_train.sh --init_from EXPORT --config egs/tta/audioldm/exp_config_lora.json"


def add_lora(unet: UNet2DConditionModel, settings: LoraConfig, name: str = "default") -> None:
    """Freeze the U-Net and add a trainable adapter (its B matrices start at zero: step 0 is the base model)."""
    unet.requires_grad_(False)
    config = PeftLoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.target_modules))
    try:
        unet.add_adapter(config, adapter_name=name)
    except ValueError as err:
        raise UserError(f"train.lora.target_modules {settings.target_modules}: {str(err).splitlines()[0][:200]}") from None


def save_adapter(unet: UNet2DConditionModel, out_dir: Path, settings: LoraConfig, base_dir: Path, audio: MelConfig, config: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(unet).items()}, str(out_dir / ADAPTER_FILE))
    write_artifact(out_dir, STAGE, config, audio, lora=asdict(settings), base=str(base_dir),
                   base_fingerprint=weights_fingerprint(base_dir / "unet"))


def read_adapter(path: str | Path) -> dict:
    meta, _ = read_artifact(path, STAGE, HOW_TO_TRAIN)
    return meta


def apply_adapters(unet: UNet2DConditionModel, adapters: list[tuple[str | Path, float]], base_dir: Path) -> None:
    """Add each (adapter folder, strength) to `unet`, the U-Net of the export at `base_dir`; all are active."""
    if not adapters:
        return
    base = weights_fingerprint(base_dir / "unet")
    names = []
    for i, (path, _) in enumerate(adapters):
        meta = read_adapter(path)
        if meta["base_fingerprint"] != base:
            raise UserError(f"--lora {path} was trained on another base model ({meta['base']}), not on {base_dir}")
        name = f"lora{i}"
        unet.add_adapter(PeftLoraConfig(r=meta["lora"]["rank"], lora_alpha=meta["lora"]["alpha"],
                                    target_modules=list(meta["lora"]["target_modules"])), adapter_name=name)
        set_peft_model_state_dict(unet, load_file(str(Path(meta["dir"]) / ADAPTER_FILE)), adapter_name=name)
        names.append(name)
    unet.set_adapters(names, weights=[float(scale) for _, scale in adapters])


def merge_adapters(unet: UNet2DConditionModel) -> None:
    """Fold the active adapters (at their strengths) into the weights and remove the adapter layers."""
    unet.fuse_lora()
    unet.unload_lora()
