"""The AUDIT recipe: SynthEdits triplets, the editor U-Net, training from a text-to-audio export, editing and scoring."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from bins.tta.edit import main as edit_main
from bins.tta.evaluate_edits import main as evaluate_main
from bins.tta.inference import main as infer_main
from bins.tta.preprocess import main as prepare_main
from bins.tta.train import main as train_main
from conftest import REPO, TINY_AUDIO
from evaluation.audit import EditScorer, summarise
from models.base.trainer import Trainer
from models.tta.audioldm.model import text_condition
from models.tta.audit.model import editor_unet
from models.tta.audit.task import AuditTask
from preprocessors.synthedits import EDIT_TYPES, plan_triplets, synthesize_side
from utils.audio import save_wav
from utils.config import load_config
from utils.errors import UserError
from utils.mel import MelConfig

CONFIG = "egs/tta/audit/exp_config_synthedits.json"


@pytest.fixture(scope="module")
def tiny_edits(tmp_path_factory):
    """SynthEdits at the tiny audio settings: 42 triplets (6 per edit type)."""
    out = tmp_path_factory.mktemp("edits")
    sets = [*TINY_AUDIO, "preprocess.synthcaps_clips=42", "preprocess.num_workers=1", "preprocess.valid_ratio=0.2",
            "preprocess.test_ratio=0.35"]
    assert prepare_main(["--dataset", "SynthEdits", "--processed_dir", str(out), *[f"--set={s}" for s in sets]]) == 0
    return out


def audit_sets(data, ldm, out, *extra):
    return [f"data.processed_dir={data}", f"output_dir={out}", f"model.init_from={ldm}", *TINY_AUDIO,
            "train.valid_every=100", "train.batch_size=4", *extra]


def test_triplets_are_true_of_their_audio():
    """The scorer finds every output's edit made (and the rest kept), and the inputs unedited; the test split's
    instructions are phrased in ways the training split never uses."""
    seconds, sr = 2.56, 16000
    cfg = MelConfig(sample_rate=sr, n_fft=1024, win_length=1024, hop_length=160, n_mels=64, fmin=0, fmax=8000,
                    log_clamp=1e-5, normalize_wav=True, segment_seconds=seconds, target_frames=256)
    triplets = plan_triplets(70, 3, 0.1, 0.1, seconds)
    scorer = EditScorer(cfg)
    rows, truth, unedited = [], [], []
    for t in triplets:
        wav_in, wav_out = (synthesize_side(t, seconds, sr, side) for side in (False, True))
        rows.append(t.row("SynthEdits"))
        truth.append(scorer(rows[-1], wav_out, wav_in, wav_out))
        unedited.append(scorer(rows[-1], wav_in, wav_in, wav_out))
    made, left = summarise(rows, truth), summarise(rows, unedited)
    assert set(made) == {*EDIT_TYPES, "all"}
    assert all(s["success"] == 100 and s["kept"] >= 80 for s in made.values()), made
    assert left["all"]["success"] <= 5, left
    assert made["all"]["mel_l1"] == 0 and all(s["mel_l1"] > 0.05 for s in left.values()), left  # the truth is its own output
    plan = plan_triplets(700, 5, 0.1, 0.2, seconds)
    train = {t.instruction for t in plan if t.split == "train"}
    test = {t.instruction for t in plan if t.split == "test"}
    assert test and not test & train
    assert not [t.instruction for t in plan if re.search(r"\ba [aeiou]", t.instruction)]  # "an electric buzzing"


def test_the_editor_starts_as_the_text_to_audio_model(tiny_ldm):
    unet = UNet2DConditionModel.from_pretrained(str(tiny_ldm / "export" / "unet")).eval()
    editor = editor_unet(unet).eval()
    c = unet.config.in_channels
    assert editor.config.in_channels == 2 * c and not editor.conv_in.weight[:, c:].any()
    z, source = torch.randn(2, c, 16, 8), torch.randn(2, c, 16, 8)
    text = text_condition(unet, torch.randn(2, 5, unet.config.cross_attention_dim), torch.ones(2, 5, dtype=torch.long))
    with torch.no_grad():
        torch.testing.assert_close(editor(torch.cat([z, source], 1), 10, **text).sample, unet(z, 10, **text).sample, atol=1e-6, rtol=1e-5)
    with pytest.raises(UserError, match="already takes a source"):
        editor_unet(editor)


def test_training_learns_then_edits_and_scores_end_to_end(tiny_edits, tiny_ldm, tmp_path):
    cfg, resolved = load_config(CONFIG, AuditTask.Config, audit_sets(tiny_edits, tiny_ldm, tmp_path, "train.learning_rate=3e-3"))
    trainer = Trainer(AuditTask, cfg, resolved, "overfit")
    base, fast = trainer.task.optimizers["unet"].param_groups
    unet = trainer.task.unwrap("unet")
    assert fast["lr"] == 10 * base["lr"] and [id(p) for p in fast["params"]] == [id(p) for p in unet.conv_in.parameters()]
    batch = next(iter(trainer.train_dl))
    assert batch["source_posterior"].shape == batch["posterior"].shape
    losses = [trainer.task.train_step(batch, 0)["loss"].item() for _ in range(15)]  # same noise and t each time
    assert losses[-1] < 0.97 * losses[0]  # as fine-tuning (tests/test_finetune.py): the loss falls slowly at high noise

    sets = audit_sets(tiny_edits, tiny_ldm, tmp_path, "train.max_steps=2")
    assert train_main(["--config", CONFIG, "--exp_name", "audit", *[f"--set={s}" for s in sets]]) == 0
    exp = tmp_path / "audit"
    assert json.loads((exp / "export" / "tta_artifact.json").read_text())["stage"] == "audit"

    clip = tiny_edits / "SynthEdits" / "wav" / f"{json.loads((tiny_edits / 'SynthEdits' / 'test.json').read_text())[0]['Source']}.wav"
    res = subprocess.run(["sh", "egs/tta/audit/run_edit.sh", "--audio", str(clip), "--instruction", "Make the beep high pitched",
                          "--instruction", "Remove the hiss", "--num_steps", "2", "--experiments_root", str(tmp_path),
                          "--output_dir", str(tmp_path / "edits")],
                         cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable})
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"using the newest experiment: {exp}" in res.stdout
    rows = [json.loads(line) for line in (tmp_path / "edits" / "prompts.jsonl").read_text().splitlines()]
    assert [r["instruction"] for r in rows] == ["Make the beep high pitched", "Remove the hiss"]
    from utils.audio import load_audio

    edited = load_audio(tmp_path / "edits" / rows[0]["wav"], 16000)
    assert abs(len(edited) - len(load_audio(clip, 16000))) <= 16000 * 0.05 and np.abs(edited).max() > 0

    from app.ui import App  # the web app's Instruct tab: the same pipeline

    app = App(tmp_path, None, "cpu", 2, 4.0)
    assert [path for _, path in app.choices("audit")] == [str(exp)] and not app.choices("audioldm")
    *players, pngs, wavs, info = app.instruct(str(exp), str(clip), "Make it high", "ddim", "2", "", "2", 3)
    assert players[0]["visible"] and len(wavs) == 1 and "egs/tta/audit/run_edit.sh" in info and "--source_guidance_scale 2" in info
    assert np.abs(load_audio(wavs[0], 16000)).max() > 0

    out = tmp_path / "eval.json"
    assert evaluate_main(["--checkpoint_path", str(exp), "--data", str(tiny_edits / "SynthEdits"), "--per_type", "1",
                          "--strengths", "0.5", "--guidance_scale", "2", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["editor"]["scores"]) == {*EDIT_TYPES, "all"} and result["editor"]["scores"]["all"]["clips"] == 7
    assert result["guidance"] == {"guidance_scale": 2.0, "source_guidance_scale": 1.5}  # given, and the config's
    assert result["round_trip"]["scores"]["all"]["clips"] == 7 and result["round_trip"]["scores"]["all"]["mel_l1"] > 0
    assert result["zero_shot"]["best"]["pitch"]["strength"] == 0.5


def test_audit_bad_input(tiny_edits, tiny_ldm, tiny_synthcaps, tmp_path, capsys):
    sets = audit_sets(tiny_edits, tiny_ldm, tmp_path, "train.max_steps=1")
    assert train_main(["--config", CONFIG, "--exp_name", "audit", *[f"--set={s}" for s in sets]]) == 0
    editor = tmp_path / "audit"
    silent = tmp_path / "silent.wav"
    save_wav(silent, np.zeros(16000, dtype=np.float32), 16000)
    loud = tmp_path / "loud.wav"
    save_wav(loud, (0.5 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF0000WAVEnot audio")
    for args, message in [
        (["--audio", str(silent), "--instruction", "Add a beep"], "is silent"),
        (["--audio", str(corrupt), "--instruction", "Add a beep"], "unreadable audio"),
        (["--audio", str(tmp_path / "none.wav"), "--instruction", "Add a beep"], "not found"),
        (["--audio", str(tmp_path), "--instruction", "Add a beep"], "is a folder, not a file"),
        (["--audio", str(loud), "--instruction", "  "], "empty --instruction"),
        (["--audio", str(loud), "--instruction", "Add a beep", "--source_guidance_scale", "nan"], "not a finite number"),
        (["--audio", str(loud), "--instruction", "Add a beep", "--checkpoint_path", str(tiny_ldm)], "is an export of stage 'audioldm', expected 'audit'"),
    ]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as code:
            from utils.cli import run_main

            run_main(lambda: edit_main([*args, *([] if "--checkpoint_path" in args else ["--checkpoint_path", str(editor)])]))
        err = capsys.readouterr().err.strip()
        assert code.value.code == 2 and len(err.splitlines()) == 1 and message in err, (args, err)
    with pytest.raises(UserError, match="--source_guidance_scale must be at least 0"):
        evaluate_main(["--checkpoint_path", str(editor), "--data", str(tiny_edits / "SynthEdits"), "--source_guidance_scale", "-1"])
    with pytest.raises(UserError, match="is an export of stage 'audit', expected 'audioldm'"):
        infer_main(["--checkpoint_path", str(editor), "--text", "a beep", "--num_steps", "1", "--output_dir", str(tmp_path / "o")])
    for extra, message in [([f"model.init_from={editor}"], "is an export of stage 'audit', expected 'audioldm'"),
                           (["model.init_from=null"], "starts from a text-to-audio model"),
                           ([f"data.processed_dir={tiny_synthcaps}", 'data.datasets=["SynthCaps"]'], "not edit triplets")]:
        with pytest.raises(UserError, match=message):
            Trainer(AuditTask, *load_config(CONFIG, AuditTask.Config, [*sets, *extra]), "bad")


def test_own_triplet_folder(tmp_path, caplog):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(4):
        save_wav(raw / f"clip {i}.wav", (0.4 * np.sin(np.arange(20480) * (i + 1) / 20)).astype(np.float32), 16000)
    save_wav(raw / "quiet.wav", np.zeros(20480, np.float32), 16000)
    with (raw / "metadata.csv").open("w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(["input", "output", "instruction"])
        w.writerows([["clip 0.wav", "clip 1.wav", "Make it higher"], ["clip 1.wav", "clip 2.wav", "Make it higher again"],
                     ["clip 2.wav", "clip 3.wav", " "], ["clip 3.wav", "gone.wav", "Drop it"], ["clip 3.wav", "clip 0.wav", "Lower it"],
                     ["quiet.wav", "clip 2.wav", "Add a tone"]])
    out = tmp_path / "processed"
    assert prepare_main(["--dataset", "edit_folder", "--raw_dir", str(raw), "--name", "Mine", "--processed_dir", str(out),
                         *[f"--set={s}" for s in TINY_AUDIO]]) == 0
    rows = [r for split in ("train", "valid", "test") for r in json.loads((out / "Mine" / f"{split}.json").read_text())]
    assert sorted(r["Caption"] for r in rows) == ["Lower it", "Make it higher", "Make it higher again"]
    # the row was named by its output clip alone ("row clip_2"), which other rows share
    assert re.search(r"skipped the triplet quiet -> clip_2_\w+ \('Add a tone'\): its input clip quiet was skipped", caplog.text)
    for r in rows:
        assert (out / "Mine" / "mel" / f"{r['Source']}.npy").exists() and r["Source"] != r["Uid"]
