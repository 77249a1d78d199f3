"""The single training loop (Accelerate) that the VAE, the LDM and the vocoder plug into.

It knows nothing about audio: it seeds, builds data loaders, prepares modules for devices/mixed
precision/multi-process, runs the step loop with a progress bar, logs to TensorBoard and metrics.jsonl,
validates with a fixed seed, checkpoints atomically (keep last K + best), resumes exactly, stops on a
non-finite loss, saves the finished step on Ctrl-C or SIGTERM, and finally asks the task to export its inference artifact.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from models.base import checkpoint
from models.base.sampler import EpochSampler
from models.base.task import Task
from utils.config import changed_keys
from utils.errors import UserError
from utils.io import read_json, write_json
from utils.log import get_logger

if TYPE_CHECKING:
    from utils.schema import BaseConfig

log = get_logger("trainer")
SCHEDULES = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}


class TrainingDiverged(UserError):
    """The loss became NaN/inf; names the step and the last good checkpoint."""


class Trainer:
    def __init__(
        self, task_cls: type[Task], cfg: BaseConfig, resolved: dict, exp_name: str,
        resume: bool = False, cpu: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.resolved = resolved
        self.exp_dir = Path(cfg.output_dir) / exp_name
        self.ckpt_root = self.exp_dir / "checkpoints"
        t = cfg.train
        self.accelerator = Accelerator(
            mixed_precision=t.mixed_precision,
            gradient_accumulation_steps=t.grad_accum_steps,
            cpu=not torch.cuda.is_available() if cpu is None else cpu,
        )
        set_seed(cfg.seed)
        if cfg.train.lora and not task_cls.supports_lora:
            raise UserError(f"train.lora is not supported for model_type {cfg.model_type}; remove it")
        self.task = task_cls(cfg, self.accelerator)
        modules, optimizers = self.task.build()
        train_ds, valid_ds = self.task.datasets()
        world_batch = t.batch_size * self.accelerator.num_processes
        if len(train_ds) < world_batch:
            raise UserError(
                f"the training split has {len(train_ds)} rows, fewer than one batch "
                f"({t.batch_size} x {self.accelerator.num_processes} processes); lower train.batch_size or add data"
            )
        self.sampler = EpochSampler(len(train_ds), cfg.seed)
        train_dl = DataLoader(
            train_ds, batch_size=t.batch_size, sampler=self.sampler, collate_fn=self.task.collate_fn,
            num_workers=cfg.data.num_workers, drop_last=True, persistent_workers=cfg.data.num_workers > 0,
        )
        valid_dl = DataLoader(
            valid_ds, batch_size=t.batch_size, shuffle=False, collate_fn=self.task.collate_fn, num_workers=0,
        )
        names = list(modules)
        prepared = self.accelerator.prepare(*modules.values(), *optimizers.values(), train_dl, valid_dl)
        self.task.modules = dict(zip(names, prepared[: len(names)]))
        self.task.optimizers = dict(zip(optimizers, prepared[len(names) : len(names) + len(optimizers)]))
        self.train_dl, self.valid_dl = prepared[-2], prepared[-1]
        self.task.schedulers = {
            k: get_scheduler(SCHEDULES[t.lr_schedule], opt, num_warmup_steps=t.warmup_steps, num_training_steps=t.max_steps)
            for k, opt in self.task.optimizers.items()
        }
        self.ema: EMAModel | None = None
        if t.ema_decay > 0 and self.task.ema_module:
            self.ema = EMAModel(self._ema_params(), decay=t.ema_decay, foreach=True)  # one op for all tensors
        self.step = 0
        self.best: dict[str, Any] = {"loss": math.inf, "path": None}
        if resume:
            self._resume()
        elif checkpoint.latest(self.ckpt_root) is not None:
            raise UserError(f"{self.exp_dir} already has checkpoints; pass --resume to continue or pick another --exp_name")
        self.writer = None
        if self.accelerator.is_main_process:
            from torch.utils.tensorboard import SummaryWriter  # seconds to import; the main process only

            self.exp_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.exp_dir / "config.json", resolved)
            self.writer = SummaryWriter(str(self.exp_dir / "logs"))

    # ---- state ---------------------------------------------------------------------------------
    def _unwrapped(self) -> dict[str, torch.nn.Module]:
        return {name: self.task.unwrap(name) for name in self.task.modules}

    def _ema_params(self) -> list[torch.nn.Parameter]:
        """The trained parameters of the EMA module (all of them, or only adapters when the rest is frozen)."""
        return [p for p in self.task.unwrap(self.task.ema_module).parameters() if p.requires_grad]

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "optimizers": {k: o.state_dict() for k, o in self.task.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.task.schedulers.items()},
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.accelerator.scaler is not None:  # fp16's loss scale: a resumed run should not relearn it by skipping steps
            state["grad_scaler"] = self.accelerator.scaler.state_dict()
        return state

    def _resume(self) -> None:
        path = checkpoint.latest(self.ckpt_root)
        if path is None:
            raise UserError(f"--resume: no checkpoint under {self.ckpt_root}")
        run_config = self.exp_dir / "config.json"
        changed = changed_keys(read_json(run_config), self.resolved) if run_config.is_file() else []
        try:
            state, meta = checkpoint.load(path, self._unwrapped())
        except checkpoint.CheckpointMismatch as err:
            if not changed:
                raise
            raise UserError(f"--resume: {path} does not fit this config, which differs from the run's own {run_config} "
                            f"({'; '.join(changed)}); resume with that config (drop the --set that changed it)") from err
        if changed:  # a longer max_steps or a new learning rate is a reason to resume; said, not refused
            log.warning("resuming with a config that differs from the run's own: %s", "; ".join(changed))
        for k, opt in self.task.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sched in self.task.schedulers.items():
            sched.load_state_dict(state["schedulers"][k])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
            self.ema.to(device=self.accelerator.device)  # the checkpoint is read onto the CPU; the model may be on a GPU
        if self.accelerator.scaler is not None and "grad_scaler" in state:
            self.accelerator.scaler.load_state_dict(state["grad_scaler"])
        self.step = meta["step"]
        self.best = meta.get("best", self.best)
        log.info("resumed from %s (step %d)", path, self.step)

    def save(self) -> Path | None:
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        path = checkpoint.save(self.ckpt_root, self.step, self._unwrapped(), self._state(), {"best": self.best})
        checkpoint.rotate(self.ckpt_root, self.cfg.train.keep_last, protect=Path(self.best["path"]) if self.best["path"] else None)
        return path

    # ---- loop ----------------------------------------------------------------------------------
    def batches(self):
        """Endless batches, starting exactly where step `self.step` left off."""
        per_epoch = len(self.train_dl)
        consumed = self.step * self.cfg.train.grad_accum_steps
        epoch, offset = divmod(consumed, per_epoch)
        while True:
            self.train_dl.set_epoch(epoch)
            yield from self.accelerator.skip_first_batches(self.train_dl, offset) if offset else self.train_dl
            epoch, offset = epoch + 1, 0

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        for m in self.task.modules.values():
            m.eval()
        totals: dict[str, float] = {}
        n = 0
        with self._ema_weights():
            for i, batch in enumerate(self.valid_dl):
                if i >= self.cfg.train.valid_batches:
                    break
                g = torch.Generator(device="cpu").manual_seed(self.cfg.seed + i)  # same noise every validation
                out = self.task.valid_step(batch, g)
                out = {k: self.accelerator.gather_for_metrics(v.detach().reshape(1)).mean().item() for k, v in out.items()}
                for k, v in out.items():
                    totals[k] = totals.get(k, 0.0) + v
                n += 1
        for m in self.task.modules.values():
            m.train()
        return {k: v / max(n, 1) for k, v in totals.items()}

    @contextmanager
    def _ema_weights(self) -> Iterator[None]:
        """Swap the EMA weights in (validation, samples, export) and restore the training weights after."""
        if self.ema is None:
            yield
            return
        params = self._ema_params()
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield
        finally:
            self.ema.restore(params)

    def _log(self, metrics: dict[str, float], prefix: str) -> None:
        if self.writer is None:
            return
        for k, v in metrics.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, self.step)
        with (self.exp_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"step": self.step, "split": prefix, **metrics}) + "\n")

    @contextmanager
    def _stop_after_the_step_on_signal(self) -> Iterator[None]:
        """The first Ctrl-C (SIGINT) or SIGTERM asks every process (accelerate's trigger, all-reduced at each step)
        to finish its step, save it and stop, so nothing since the last checkpoint is lost; a second one stops at
        once. SIGTERM is what `kill`, `timeout`, `docker stop` and a cluster's preemption or time limit send (SLURM
        waits KillWait seconds before SIGKILL), and it used to end the run without saving."""
        if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread only
            yield
            return
        watched = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.getsignal(s) for s in watched}

        def ask_to_stop(signum: int, frame: object) -> None:
            for s in watched:
                signal.signal(s, previous[s])
            self.accelerator.set_trigger()
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            tqdm.write(f"{name}: saving after this step (Ctrl-C again to stop at once)")

        for s in watched:
            signal.signal(s, ask_to_stop)
        try:
            yield
        finally:
            for s in watched:
                signal.signal(s, previous[s])

    def run(self) -> Path:
        """Train to train.max_steps, then export; returns the export folder."""
        with self._stop_after_the_step_on_signal():
            return self._run()

    def _run(self) -> Path:
        t = self.cfg.train
        acc = self.accelerator
        for m in self.task.modules.values():
            m.train()
        bar = tqdm(total=t.max_steps, initial=self.step, desc=self.exp_dir.name, unit="step", disable=not acc.is_main_process, dynamic_ncols=True)
        running: dict[str, float] = {}
        n_running, t0 = 0, time.time()
        it = self.batches()
        while self.step < t.max_steps:
            for micro in range(t.grad_accum_steps):
                batch = next(it)
                self.task.micro_batch = micro
                with acc.accumulate(*self.task.modules.values()):
                    out = self.task.train_step(batch, self.step)
            loss = out["loss"].detach()
            if not torch.isfinite(loss):
                last = checkpoint.latest(self.ckpt_root)
                raise TrainingDiverged(
                    f"loss became {loss.item()} at step {self.step + 1}; last good checkpoint: {last or 'none (no checkpoint saved yet)'}; "
                    "lower train.learning_rate or enable train.grad_clip, then --resume"
                )
            if self.ema is not None:
                self.ema.step(self._ema_params())
            self.step += 1
            for k, v in out.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            n_running += 1
            bar.update()
            if self.step % t.log_every == 0 or self.step == t.max_steps:
                avg = {k: v / n_running for k, v in running.items()}
                avg["lr"] = next(iter(self.task.schedulers.values())).get_last_lr()[0]
                avg["steps_per_s"] = n_running / max(time.time() - t0, 1e-9)
                bar.set_postfix(loss=f"{avg['loss']:.4f}", sps=f"{avg['steps_per_s']:.2f}")
                self._log(avg, "train")
                running, n_running, t0 = {}, 0, time.time()
            improved = False
            if self.step % t.valid_every == 0 or self.step == t.max_steps:
                metrics = self.validate()
                self._log(metrics, "valid")
                if metrics.get("loss", math.inf) < self.best["loss"]:
                    self.best = {"loss": metrics["loss"], "step": self.step, "path": str(self.ckpt_root / f"step_{self.step:08d}")}
                    improved = True
            if improved or self.step % t.save_every == 0 or self.step == t.max_steps:
                self.save()
            elif self.accelerator.check_trigger():
                bar.close()
                path = self.save()
                if path is not None:
                    log.warning("stopped at step %d and saved %s; continue with --resume", self.step, path)
                raise KeyboardInterrupt
            if self.writer is not None and ((t.sample_every and self.step % t.sample_every == 0) or self.step == t.max_steps):
                with torch.no_grad(), self._ema_weights():
                    self.task.log_samples(next(iter(self.valid_dl)), self.writer, self.step)
        bar.close()
        return self.export()

    def export(self) -> Path:
        out = self.exp_dir / "export"
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            with torch.no_grad(), self._ema_weights():
                self.task.export(out, self.resolved)
            self.writer.flush()
            log.info("exported %s", out)
        acc.wait_for_everyone()
        return out
