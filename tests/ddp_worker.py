"""Run by the data-parallel tests under torchrun: trains the debug VAE on every rank and records each rank's
weights. With a third argument `until_signal` it trains slowly and long, tells the test (a `started` file) once
step 2 is done, and records the step every rank stopped after when the launcher's SIGTERM reaches it."""

import hashlib
import json
import sys
import time
from pathlib import Path


from models.base.trainer import Trainer
from models.tta.autoencoderkl.task import AutoencoderKLTask
from utils.config import load_config

processed, out = sys.argv[1], Path(sys.argv[2])
until_signal = sys.argv[3:] == ["until_signal"]
steps = ["train.max_steps=1000", "train.save_every=1000", "train.valid_every=1000"] if until_signal else ["train.max_steps=3"]
cfg, resolved = load_config(
    "egs/tta/autoencoderkl/exp_config_debug.json", AutoencoderKLTask.Config,
    [f"data.processed_dir={processed}", f"output_dir={out}", "loss.disc_start=1", *steps],
)
trainer = Trainer(AutoencoderKLTask, cfg, resolved, "ddp")
acc = trainer.accelerator
stopped = False
if until_signal:
    real = trainer.task.train_step

    def slow_step(batch, step):
        if step == 2 and acc.is_main_process:
            (out / "started").touch()
        time.sleep(0.2)  # the signal arrives mid-run, not after the last step
        return real(batch, step)

    trainer.task.train_step = slow_step
try:
    trainer.run()
except KeyboardInterrupt:
    stopped = True
digest = hashlib.sha1()
for name in ("g", "d"):
    for k, v in sorted(trainer.task.unwrap(name).state_dict().items()):
        digest.update(k.encode() + v.detach().cpu().numpy().tobytes())
(out / f"rank{acc.process_index}.json").write_text(
    json.dumps({"world": acc.num_processes, "step": trainer.step, "stopped": stopped, "weights": digest.hexdigest()})
)
