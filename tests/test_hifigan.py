import subprocess
import sys

import pytest
import torch

from bins.tta.train import main as train_main
from conftest import REPO
from models.base.trainer import Trainer
from models.vocoder import load_vocoder
from models.vocoder.task import HiFiGANTask
from utils.config import load_config
from utils.errors import UserError

DEBUG = "egs/tta/hifigan/exp_config_debug.json"


def test_few_steps_lower_mel_loss(tiny_synthcaps, tmp_path):
    cfg, res = load_config(DEBUG, HiFiGANTask.Config, [f"data.processed_dir={tiny_synthcaps}", f"output_dir={tmp_path}",
                                                       "loss.disc_start=1000", "train.learning_rate=3e-3"])
    trainer = Trainer(HiFiGANTask, cfg, res, "voc")
    batch = next(iter(trainer.train_dl))
    assert batch["wav"].shape == (4, 16 * 160)
    losses = [trainer.task.train_step(batch, 0)["mel"].item() for _ in range(15)]
    assert losses[-1] < 0.8 * losses[0]


def test_balance_by_is_refused_not_ignored(tiny_synthcaps, tmp_path):
    cfg, res = load_config(DEBUG, HiFiGANTask.Config, [f"data.processed_dir={tiny_synthcaps}", f"output_dir={tmp_path}",
                                                       "data.balance_by=sound_type"])
    with pytest.raises(UserError, match="data.balance_by: the vocoder"):
        Trainer(HiFiGANTask, cfg, res, "voc")


def test_gan_steps_train_exports_and_evaluates(tiny_synthcaps, tmp_path):
    out = tmp_path / "ckpts"
    args = ["--config", DEBUG, "--exp_name", "voc", f"--set=data.processed_dir={tiny_synthcaps}", f"--set=output_dir={out}"]
    assert train_main(args) == 0
    cfg, _ = load_config(DEBUG, HiFiGANTask.Config, [])
    voc = load_vocoder("hifigan", str(out / "voc"), cfg.audio)
    assert voc(torch.randn(1, 64, 20)).shape == (1, 20 * 160)
    metrics = [line for line in (out / "voc" / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    assert '"d_loss"' in metrics[-1] and '"fm"' in metrics[-1]
    res = subprocess.run(
        [sys.executable, "bins/tta/eval_vocoder.py", "--processed_dir", str(tiny_synthcaps), "--split", "valid",
         "--hifigan", str(out / "voc"), "--limit", "4"], cwd=REPO, capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["vocoder", "mel_l1", "mel_mse", "lsd_db", "x", "realtime"]
    assert [line.split()[0] for line in lines[1:]] == ["griffinlim", "hifigan"]
