"""Typed config sections shared by every entry point (validated by utils.config.build).

Defaults live in config/base.json, not here: a field without a value in the files is an error.
Task-specific sections (model, loss) are declared next to each task and added by subclassing BaseConfig.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from utils.mel import MelConfig


@dataclass(frozen=True)
class PreprocessConfig:
    num_workers: int  # parallel worker processes (0 = all cores)
    min_seconds: float  # shorter clips are skipped and reported
    silence_peak: float  # clips whose peak is below this are "silent"
    valid_ratio: float  # own-folder / SynthCaps split ratios
    test_ratio: float
    split_seed: int
    synthcaps_clips: int  # size of a built-in corpus: SynthCaps clips, SynthEdits triplets

    def __post_init__(self) -> None:
        if self.num_workers < 0 or self.min_seconds < 0 or self.silence_peak < 0 or self.synthcaps_clips < 1:
            raise ValueError("num_workers, min_seconds and silence_peak must be >= 0 and synthcaps_clips >= 1")
        if not (0 <= self.valid_ratio < 1 and 0 <= self.test_ratio < 1 and self.valid_ratio + self.test_ratio < 1):
            raise ValueError(f"valid_ratio and test_ratio must be in [0, 1) with a sum below 1, got {self.valid_ratio}, {self.test_ratio}")


@dataclass(frozen=True)
class DataConfig:
    processed_dir: str
    datasets: list[str]
    train_split: str
    valid_split: str
    num_workers: int  # DataLoader workers
    # a row attribute (e.g. SynthCaps' "sound_type") whose values training should see about equally often: rows
    # of rarer values are listed several times in the training split, counted within each dataset; null: every
    # row once
    balance_by: str | None = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters instead of full training (tasks that support it; others refuse the section)."""

    rank: int
    alpha: float  # the update is scaled by alpha / rank
    target_modules: list[str]  # module names, e.g. the U-Net's ["to_q", "to_k", "to_v", "to_out.0"]

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not self.target_modules:
            raise ValueError(f"train.lora needs rank >= 1, alpha > 0 and target_modules, got {self}")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int
    max_steps: int
    learning_rate: float
    adam_betas: list[float]
    weight_decay: float
    warmup_steps: int
    lr_schedule: Literal["constant", "cosine", "linear"]
    grad_accum_steps: int
    grad_clip: float  # 0 disables clipping
    mixed_precision: Literal["no", "fp16", "bf16"]
    ema_decay: float  # 0 disables EMA
    log_every: int
    valid_every: int
    valid_batches: int
    save_every: int
    keep_last: int
    sample_every: int  # log mel images / audio every N steps (0 = only at the end)
    lora: LoraConfig | None  # null: train the whole model

    def __post_init__(self) -> None:
        at_least = {"batch_size": 1, "grad_accum_steps": 1, "log_every": 1, "valid_every": 1, "save_every": 1, "keep_last": 1,
                    "max_steps": 0, "warmup_steps": 0, "valid_batches": 0, "sample_every": 0, "weight_decay": 0, "grad_clip": 0}
        for key, low in at_least.items():
            if getattr(self, key) < low:
                raise ValueError(f"{key} must be at least {low}, got {getattr(self, key)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be above 0, got {self.learning_rate}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class BaseConfig:
    model_type: str
    seed: int
    output_dir: str  # experiments land in <output_dir>/<exp_name>
    audio: MelConfig
    preprocess: PreprocessConfig
    data: DataConfig
    train: TrainConfig
