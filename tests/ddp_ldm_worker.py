"""Run by test_two_process_trainable_text_encoder under torchrun: trains the debug LDM with a trainable text
encoder data-parallel and records each rank's U-Net and text-encoder weights."""

import hashlib
import json
import sys
from pathlib import Path


from models.base.trainer import Trainer
from models.tta.audioldm.task import AudioLDMTask
from utils.config import load_config

processed, vae, t5, out = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
cfg, resolved = load_config(
    "egs/tta/audioldm/exp_config_debug.json", AudioLDMTask.Config,
    [f"data.processed_dir={processed}", f"output_dir={out}", f"model.autoencoder_path={vae}", f"text_encoder.name_or_path={t5}",
     "text_encoder.trainable=true", "unet.cross_attention_dim=32", "train.max_steps=2", "train.batch_size=2",
     "model.valid_samples=0", "train.valid_every=100", "train.ema_decay=0"],
)
trainer = Trainer(AudioLDMTask, cfg, resolved, "ddp_ldm")
trainer.run()
acc = trainer.accelerator
digests = {}
for name in ("unet", "text"):
    digest = hashlib.sha1()
    for k, v in sorted(trainer.task.unwrap(name).state_dict().items()):
        digest.update(k.encode() + v.detach().cpu().numpy().tobytes())
    digests[name] = digest.hexdigest()
(out / f"rank{acc.process_index}.json").write_text(json.dumps({"world": acc.num_processes, "step": trainer.step, **digests}))
