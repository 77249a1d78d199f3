import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from diffusers import AutoencoderKL

from bins.tta.train import main as train_main
from conftest import REPO
from models.base import checkpoint
from models.base.trainer import Trainer, TrainingDiverged
from models.tta.autoencoderkl import loss as L
from models.tta.autoencoderkl.model import build_vae, check_train_crop, load_vae_export
from models.tta.autoencoderkl.task import AutoencoderKLTask
from modules.gan_losses import adaptive_weight, gan_active, hinge_d_loss
from utils.config import load_config
from utils.errors import UserError

DEBUG = "egs/tta/autoencoderkl/exp_config_debug.json"


def debug_cfg(processed, tmp_path, *extra):
    sets = [f"data.processed_dir={processed}", f"output_dir={tmp_path / 'ckpts'}", *extra]
    return load_config(DEBUG, AutoencoderKLTask.Config, sets)


def losses(exp_dir):
    rows = [json.loads(line) for line in (exp_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r["split"] == "train"]


# ---- loss pieces ----------------------------------------------------------------------------------

def test_adaptive_weight_is_gradient_norm_ratio():
    w = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(3)
    rec = (w @ x).pow(2).sum()
    adv = 5 * (w @ x).sum()
    g_rec = torch.autograd.grad(rec, w, retain_graph=True)[0].norm()
    g_adv = torch.autograd.grad(adv, w, retain_graph=True)[0].norm()
    assert torch.isclose(adaptive_weight(rec, adv, w), g_rec / (g_adv + 1e-4))
    assert adaptive_weight(rec, 1e-12 * adv, w, max_weight=10.0) == 10.0


def test_gan_gate_and_hinge():
    assert not gan_active(9, 10) and gan_active(10, 10)
    assert hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)) == 0
    assert hinge_d_loss(torch.zeros(4), torch.zeros(4)) == 1


def test_kl_term_zero_for_standard_normal_and_generator_loss_terms(tmp_path):
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    x = torch.randn(2, 1, 8, 8)
    standard = DiagonalGaussianDistribution(torch.zeros(2, 8, 2, 2))  # mean 0, logvar 0
    assert L.kl_term(standard, x) == 0
    shifted = DiagonalGaussianDistribution(torch.cat([torch.ones(2, 4, 2, 2), torch.zeros(2, 4, 2, 2)], 1))
    assert torch.isclose(L.kl_term(shifted, x), torch.tensor(0.5 * 16 / 64))  # 0.5 * sum(mu^2) / mel elements
    cfg = L.VAELossConfig({"rec": 1.0, "kl": 0.1}, 0, 2, 8, 1e-4, 1e4)
    out = L.generator_loss(cfg, x, x + 1, shifted, None, None)
    assert torch.isclose(out["loss"], 1.0 + 0.1 * out["kl"]) and "adv" not in out
    with pytest.raises(ValueError, match="unknown"):
        L.VAELossConfig({"rec": 1.0, "lpips": 1.0}, 0, 2, 8, 1e-4, 1e4)


# ---- training -------------------------------------------------------------------------------------

def test_steps_change_weights_and_lower_loss(tiny_synthcaps, tmp_path):
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, "loss.disc_start=1000", "train.learning_rate=3e-3")
    trainer = Trainer(AutoencoderKLTask, cfg, resolved, "overfit")
    task = trainer.task
    batch = next(iter(trainer.train_dl))
    before = [p.detach().clone() for p in task.unwrap("g").parameters()]
    first = task.train_step(batch, 0)["loss"].item()
    assert any(not torch.equal(a, b) for a, b in zip(before, task.unwrap("g").parameters()))
    for step in range(1, 20):
        last = task.train_step(batch, step)["loss"].item()
    assert last < 0.8 * first


def test_train_crops_train_on_crops_and_validate_on_whole_clips(tiny_synthcaps, tmp_path):
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, "model.train_crop_frames=64")
    trainer = Trainer(AutoencoderKLTask, cfg, resolved, "crops")
    task, batch = trainer.task, next(iter(trainer.train_dl))
    assert batch["mel"].shape[-1] == 64 and next(iter(trainer.valid_dl))["mel"].shape[-1] == 128
    train_set = task.datasets()[0]
    crops = [train_set[epoch * len(train_set)]["mel"] for epoch in range(4)]  # clip 0 in four epochs
    assert any(not torch.equal(crops[0], c) for c in crops[1:])
    assert torch.isfinite(task.train_step(batch, 0)["loss"]) and task.latent_std() > 0


@pytest.mark.parametrize("crop", [63, 256])
def test_train_crop_that_breaks_the_downsampling_or_exceeds_the_clip_is_refused(tiny_synthcaps, tmp_path, crop):
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, f"model.train_crop_frames={crop}")
    with pytest.raises(UserError, match="model.train_crop_frames"):
        Trainer(AutoencoderKLTask, cfg, resolved, "bad_crop")


def test_demo_vae_config_trains_on_half_length_crops_it_can_take():
    """The demo config's comment: random 128-frame halves of its 256-frame clips, on a VAE with no mid-block
    attention (attention would see a crop's context in training and a whole clip's after)."""
    cfg, _ = load_config("egs/tta/autoencoderkl/exp_config_synthcaps.json", AutoencoderKLTask.Config, [])
    assert cfg.model.train_crop_frames * 2 == cfg.audio.target_frames and cfg.model.mid_block_add_attention is False
    check_train_crop(cfg.model, build_vae(cfg.model), cfg.audio)


def test_discriminator_trains_only_from_disc_start(tiny_synthcaps, tmp_path):
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, "loss.disc_start=1")
    trainer = Trainer(AutoencoderKLTask, cfg, resolved, "gate")
    task, batch = trainer.task, next(iter(trainer.train_dl))
    d_before = [p.detach().clone() for p in task.unwrap("d").parameters()]
    out0 = task.train_step(batch, 0)
    assert "d_loss" not in out0 and all(torch.equal(a, b) for a, b in zip(d_before, task.unwrap("d").parameters()))
    out1 = task.train_step(batch, 1)
    assert {"d_loss", "adv", "adv_weight"} <= set(out1)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, task.unwrap("d").parameters()))


def test_resume_repeats_the_uninterrupted_run(tiny_synthcaps, tmp_path):
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, "train.max_steps=6", "train.save_every=3", "train.valid_every=100")
    full = Trainer(AutoencoderKLTask, cfg, resolved, "full")
    full.run()
    cfg3, res3 = debug_cfg(tiny_synthcaps, tmp_path, "train.max_steps=3", "train.save_every=3", "train.valid_every=100")
    Trainer(AutoencoderKLTask, cfg3, res3, "split").run()
    with pytest.raises(UserError, match="--resume"):
        Trainer(AutoencoderKLTask, cfg, resolved, "split")
    # another model: the keys that changed are named (it blamed a "missing, truncated or corrupt file" before)
    wider = debug_cfg(tiny_synthcaps, tmp_path, "train.max_steps=6", "train.save_every=3", "train.valid_every=100",
                      "model.block_out_channels=[8, 24]")
    with pytest.raises(UserError, match="does not fit this config, which differs from the run's own") as refused:
        Trainer(AutoencoderKLTask, *wider, "split", resume=True)
    assert "model.block_out_channels: [8, 16] there, [8, 24] here" in str(refused.value)
    assert "train.max_steps: 3 there, 6 here" in str(refused.value)
    resumed = Trainer(AutoencoderKLTask, cfg, resolved, "split", resume=True)
    assert resumed.step == 3
    resumed.run()
    a, b = losses(full.exp_dir), losses(resumed.exp_dir)
    assert [s for s, _ in b] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in a] == [s for s, _ in b]
    assert [v for _, v in a] == pytest.approx([v for _, v in b], rel=1e-6, abs=1e-7)  # disc turns on at step 2: both GAN optimizers resumed too
    for name, p in full.task.unwrap("g").state_dict().items():
        torch.testing.assert_close(p, resumed.task.unwrap("g").state_dict()[name])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_the_finished_step_and_resume_repeats_the_uninterrupted_run(tiny_synthcaps, tmp_path, signum):
    """Before, Ctrl-C lost every step since the last checkpoint (here: all four, save_every 100), and so did the
    SIGTERM of `kill`, `timeout`, `docker stop` or a cluster's preemption until it was handled the same way."""
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, "train.max_steps=6", "train.save_every=100", "train.valid_every=100")
    full = Trainer(AutoencoderKLTask, cfg, resolved, "full")
    full.run()
    stopped = Trainer(AutoencoderKLTask, cfg, resolved, "stopped")
    real = stopped.task.train_step

    def signal_during_step_4(batch, step):
        if step == 3:
            os.kill(os.getpid(), signum)  # the step still finishes
        return real(batch, step)

    stopped.task.train_step = signal_during_step_4
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    assert checkpoint.latest(stopped.ckpt_root).name == "step_00000004"
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # both put back
    resumed = Trainer(AutoencoderKLTask, cfg, resolved, "stopped", resume=True)
    assert resumed.step == 4
    resumed.run()
    for name, p in full.task.unwrap("g").state_dict().items():
        torch.testing.assert_close(p, resumed.task.unwrap("g").state_dict()[name])


def test_killed_save_leaves_last_checkpoint_loadable(tiny_synthcaps, tmp_path, monkeypatch):
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, "train.valid_every=100")
    trainer = Trainer(AutoencoderKLTask, cfg, resolved, "killed")
    trainer.step = 2
    first = trainer.save()
    calls = {"n": 0}
    real = checkpoint.save_model

    def dying_save(module, path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed while saving")
        real(module, path, **kwargs)

    monkeypatch.setattr(checkpoint, "save_model", dying_save)
    trainer.step = 4
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    assert checkpoint.latest(trainer.ckpt_root) == first
    state, meta = checkpoint.load(first, trainer._unwrapped())
    assert meta["step"] == 2 and "optimizers" in state
    resumed = Trainer(AutoencoderKLTask, cfg, resolved, "killed", resume=True)
    assert resumed.step == 2
    left = trainer.ckpt_root / ".tmp_step_00000004"
    assert left.is_dir()  # what the killed save left
    monkeypatch.undo()
    resumed.step = 3
    resumed.save()  # another step's save clears it (it used to stay, gigabytes at full size)
    assert not left.exists() and checkpoint.latest(trainer.ckpt_root).name == "step_00000003"


def test_nan_loss_stops_with_step_and_checkpoint(tiny_synthcaps, tmp_path, monkeypatch):
    cfg, resolved = debug_cfg(tiny_synthcaps, tmp_path, "train.save_every=2", "train.valid_every=100")
    trainer = Trainer(AutoencoderKLTask, cfg, resolved, "nan")
    real = trainer.task.train_step

    def poisoned(batch, step):
        out = real(batch, step)
        return {**out, "loss": torch.tensor(math.nan)} if step == 2 else out

    monkeypatch.setattr(trainer.task, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3; last good checkpoint: .*step_00000002"):
        trainer.run()


def test_cli_trains_exports_and_loads(tiny_synthcaps, tmp_path, capsys):
    out = tmp_path / "ckpts"
    code = train_main(["--config", DEBUG, "--exp_name", "cli", f"--set=data.processed_dir={tiny_synthcaps}", f"--set=output_dir={out}"])
    assert code == 0 and "export in" in capsys.readouterr().out
    exp = out / "cli"
    assert (exp / "config.json").exists() and list((exp / "logs").iterdir())
    assert [p.name for p in checkpoint.step_dirs(exp / "checkpoints")] == ["step_00000002", "step_00000004"]
    vae, mel_cfg, meta = load_vae_export(exp)
    assert mel_cfg.target_frames == 128 and meta["config"]["model"]["latent_channels"] == 4
    assert vae.config.scaling_factor == pytest.approx(1 / meta["latent_std"])
    image = torch.randn(1, 1, 128, 64)  # [B, 1, T, n_mels]: AudioLDM's orientation
    assert vae.encode(image).latent_dist.mode().shape == (1, 4, 64, 32)
    res = subprocess.run([sys.executable, "bins/tta/eval_vae.py", "--vae", str(exp), "--split", "valid"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    result = json.loads((exp / "export" / "eval_valid.json").read_text())
    assert result["compression_ratio"] == 1.0 and result["lsd_db"] > 0 and result["latent_shape"] == [4, 64, 32]


def test_pretrained_vae_folder_as_stage_one(tiny_synthcaps, tmp_path):
    cfg, _ = debug_cfg(tiny_synthcaps, tmp_path)
    folder = tmp_path / "published_vae"
    build_vae(cfg.model).save_pretrained(str(folder))
    out = tmp_path / "ckpts"
    args = ["--config", DEBUG, "--exp_name", "pre", "--pretrained_vae", str(folder),
            f"--set=data.processed_dir={tiny_synthcaps}", f"--set=output_dir={out}", "--set=train.max_steps=0"]
    assert train_main(args) == 0
    vae, _, _ = load_vae_export(out / "pre")
    ref = AutoencoderKL.from_pretrained(str(folder))
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(v, vae.state_dict()[k])
    bad = tmp_path / "rgb_vae"
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4).save_pretrained(str(bad))
    with pytest.raises(UserError, match="3 input channels"):
        train_main([*args[:5], str(bad), *args[6:]])


def test_two_process_data_parallel(tiny_synthcaps, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "tests/ddp_worker.py", str(tiny_synthcaps), str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["step"] == 3 for r in ranks)
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert (tmp_path / "ddp" / "export" / "vae" / "config.json").exists()


def test_sigterm_to_the_launcher_saves_one_step_on_every_rank(tiny_synthcaps, tmp_path):
    """A cluster's preemption signals the launcher (torchrun), which passes SIGTERM on to every worker: all ranks
    finish the same step, rank 0 saves it, and the run can resume from there. Before, the workers died unsaved."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
         "tests/ddp_worker.py", str(tiny_synthcaps), str(tmp_path), "until_signal"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "started").exists():
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[0][-3000:]
            time.sleep(0.2)
        launcher.send_signal(signal.SIGTERM)
        output = launcher.communicate(timeout=120)[0]
    finally:
        launcher.kill()
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["stopped"] for r in ranks), output[-3000:]
    assert 2 <= ranks[0]["step"] == ranks[1]["step"] < 1000
    assert ranks[0]["weights"] == ranks[1]["weights"]
    saved = checkpoint.latest(tmp_path / "ddp" / "checkpoints")
    assert saved is not None and saved.name == f"step_{ranks[0]['step']:08d}"
    assert "SIGTERM: saving after this step" in output
