"""Run by test_ddp under torchrun: trains the debug VAE data-parallel and records each rank's weights."""

import hashlib
import json
import sys
from pathlib import Path


from models.base.trainer import Trainer
from models.tta.autoencoderkl.task import AutoencoderKLTask
from utils.config import load_config

processed, out = sys.argv[1], Path(sys.argv[2])
cfg, resolved = load_config(
    "egs/tta/autoencoderkl/exp_config_debug.json", AutoencoderKLTask.Config,
    [f"data.processed_dir={processed}", f"output_dir={out}", "train.max_steps=3", "loss.disc_start=1"],
)
trainer = Trainer(AutoencoderKLTask, cfg, resolved, "ddp")
trainer.run()
acc = trainer.accelerator
digest = hashlib.sha1()
for name in ("g", "d"):
    for k, v in sorted(trainer.task.unwrap(name).state_dict().items()):
        digest.update(k.encode() + v.detach().cpu().numpy().tobytes())
(out / f"rank{acc.process_index}.json").write_text(
    json.dumps({"world": acc.num_processes, "step": trainer.step, "weights": digest.hexdigest()})
)
