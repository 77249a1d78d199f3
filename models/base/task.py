"""Task: the model-specific half of training. The Trainer owns the loop; a task owns its step.

A task declares its trainable modules and optimizers, and implements `train_step` (reading top to
bottom, calling `self.optim_step` for each optimizer), `valid_step`, optional `log_samples`, and
`export`. All randomness inside a step comes from `step_generator(step)`, a function of
(seed, step, micro-batch, rank), so a resumed run repeats exactly what the uninterrupted run would have
done, and accumulated micro-batches differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:  # the config schema names the audio settings; the base classes only read train/seed
    from utils.schema import BaseConfig



class Task(ABC):
    """Base class; subclasses set `Config` (a BaseConfig subclass with their model/loss sections)."""

    Config: type[BaseConfig]
    # Name of the module whose EMA weights are kept (when train.ema_decay > 0) and exported.
    ema_module: str | None = None
    # Whether `train.lora` (adapters instead of full training) is implemented by this task.
    supports_lora: bool = False

    def __init__(self, cfg: BaseConfig, accelerator: Accelerator) -> None:
        self.cfg = cfg
        self.accelerator = accelerator
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}

    # ---- construction ---------------------------------------------------------------------------
    @abstractmethod
    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        """Trainable modules and their optimizers, keyed by name ('g', 'd', ...)."""

    @abstractmethod
    def datasets(self) -> tuple[Dataset, Dataset]:
        """(train, valid) datasets; their indices come from the trainer's EpochSampler."""

    collate_fn = None  # a task's batch assembly (None: torch's default)

    def adam(self, module: nn.Module, lr: float | None = None, lr_scales: dict[str, float] | None = None) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters; those whose name starts with a key of `lr_scales` learn at that
        multiple of the learning rate (a parameter group each)."""
        t = self.cfg.train
        lr = lr or t.learning_rate
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in module.named_parameters():
            if p.requires_grad:
                scale = next((v for k, v in (lr_scales or {}).items() if name.startswith(k)), 1.0)
                groups.setdefault(scale, []).append(p)
        ordered = sorted(groups.items(), key=lambda group: group[0] != 1.0)  # the base rate first: the one logged
        # fused: one kernel for all parameters, on CPUs too, where torch's default loops over them in Python
        # (demo U-Net step at batch 16: 0.342 s fused, 0.358 s looped; bench/run_all.py --cases ldm_options)
        return torch.optim.AdamW([{"params": ps, "lr": lr * scale} for scale, ps in ordered], lr=lr,
                                 betas=tuple(t.adam_betas), weight_decay=t.weight_decay, fused=True)

    # ---- per step ------------------------------------------------------------------------------
    # Which micro-batch of the step `train_step` is on (0 .. grad_accum_steps - 1); set by the Trainer so
    # that accumulated micro-batches draw different noise, timesteps and dropout.
    micro_batch: int = 0

    def step_generator(self, step: int, device: torch.device | None = None) -> torch.Generator:
        """Per-step, per-micro-batch, per-rank RNG: noise, timesteps, dropout masks all come from here.
        Micro-batch 0 keeps the seeds of runs without accumulation."""
        seed = (self.cfg.seed * 1_000_003 + step) * 64 + self.accelerator.process_index + self.micro_batch * 2**48
        return torch.Generator(device=device or "cpu").manual_seed(seed % (2**63))

    def optim_step(self, names: str | tuple[str, ...], loss: torch.Tensor) -> None:
        """One backward of `loss`, then clip, step and zero-grad each named optimizer (no-ops while accumulating)."""
        acc = self.accelerator
        acc.backward(loss)
        for name in (names,) if isinstance(names, str) else names:
            if acc.sync_gradients and self.cfg.train.grad_clip > 0:
                acc.clip_grad_norm_(self.modules[name].parameters(), self.cfg.train.grad_clip)
            self.optimizers[name].step()
            if name in self.schedulers and acc.sync_gradients:
                self.schedulers[name].step()
            self.optimizers[name].zero_grad(set_to_none=True)

    @abstractmethod
    def train_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """One optimisation step; returns scalar tensors to log (the key 'loss' is checked for NaN)."""

    @abstractmethod
    def valid_step(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Validation metrics for one batch with a fixed generator; 'loss' selects the best checkpoint."""

    def log_samples(self, batch: dict, writer: Any, step: int) -> None:
        """Optional: images/audio for TensorBoard."""

    @abstractmethod
    def export(self, out_dir: Path, resolved_config: dict) -> None:
        """Write the inference artifact (weights + config) the next stage loads."""

    def unwrap(self, name: str) -> nn.Module:
        return self.accelerator.unwrap_model(self.modules[name])
