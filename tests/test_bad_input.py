"""Bad input across the entry points, one class per test: each ends in one 'error: ...' line and exit code 2
(through run_main, as the scripts run), and nothing already written is lost."""

import shutil
import socket

import pytest

from bins.tta.convert import main as convert_main
from bins.tta.eval_vae import main as eval_vae_main
from bins.tta.evaluate import main as evaluate_main
from bins.tta.inference import main as infer_main
from bins.tta.preprocess import main as prepare_main
from bins.tta.train import main as train_main
from bins.tta.webapp import main as webapp_main
from utils.cli import run_main


def one_line_error(main, args: list[str], capsys) -> str:
    """Runs `main(args)` as an entry point; returns its one error line after checking exit code 2."""
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: main(args))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_an_output_folder_that_is_a_file(tiny_ldm, tiny_vae, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    cases = [
        (infer_main, ["--checkpoint_path", str(tiny_ldm), "--text", "A bell", "--num_steps", "1", "--output_dir", str(taken)]),
        (infer_main, ["--checkpoint_path", str(tiny_ldm), "--text", "A bell", "--num_steps", "1", "--output_dir", str(taken / "sub")]),
        (prepare_main, ["--dataset", "SynthCaps", "--processed_dir", str(taken), "--set=preprocess.synthcaps_clips=4"]),
        (train_main, ["--config", "egs/tta/autoencoderkl/exp_config_debug.json", "--exp_name", "taken", f"--set=output_dir={tmp_path}"]),
        (convert_main, ["--from", "audioldm", "--src", str(tmp_path), "--out", str(taken)]),
    ]
    for main, args in cases:
        assert "is a file, not a folder" in one_line_error(main, args, capsys)
    assert taken.read_text() == "keep me"


def test_an_output_folder_nothing_can_be_written_in(tiny_ldm, tmp_path, capsys):
    """/proc takes no new files, even from root (for whom permission bits say nothing): the run stops before any
    work with one line, where inference ran to the end and then raised mkdir's traceback."""
    line = one_line_error(infer_main, ["--checkpoint_path", str(tiny_ldm), "--text", "A bell", "--num_steps", "1",
                                       "--output_dir", "/proc/tta_out"], capsys)
    assert line.startswith("error: --output_dir /proc/tta_out: nothing can be written in /proc")
    line = one_line_error(prepare_main, ["--dataset", "SynthCaps", "--processed_dir", "/proc/tta_data"], capsys)
    assert "nothing can be written in /proc" in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", "", ".."])
def test_an_experiment_name_that_is_not_a_folder_name(tmp_path, capsys, name):
    """--exp_name ../elsewhere wrote outside output_dir."""
    args = ["--config", "egs/tta/autoencoderkl/exp_config_debug.json", "--exp_name", name, f"--set=output_dir={tmp_path / 'ckpts'}"]
    assert "must be a plain folder name" in one_line_error(train_main, args, capsys)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("main, args, message", [
    (infer_main, ["--num_steps", "0"], "--num_steps must be at least 1, got 0"),  # was silently the default
    (infer_main, ["--guidance_scale", "nan"], "--guidance_scale nan is not a finite number"),
    (infer_main, ["--batch_size", "0"], "--batch_size must be at least 1"),
    (infer_main, ["--lora_scale", "inf", "--lora", "x"], "--lora_scale inf is not a finite number"),
    (infer_main, ["--duration", "nan"], "--duration nan must be in"),
    (eval_vae_main, ["--batch_size", "-1"], "--batch_size must be at least 1"),
    (train_main, ["--set=train.batch_size=0"], "train: batch_size must be at least 1"),
    (train_main, ["--set=train.learning_rate=NaN"], "train.learning_rate: nan is not a finite number"),
    (train_main, ["--set=train.ema_decay=1.5"], "ema_decay must be in [0, 1)"),
    (prepare_main, ["--num_workers", "-2"], "--num_workers must be at least 0"),
    (prepare_main, ["--set=preprocess.synthcaps_clips=2"], "synthcaps_clips=2 is too small"),  # was a traceback
    (prepare_main, ["--dataset", "SynthEdits", "--set=preprocess.synthcaps_clips=2"], "synthcaps_clips=2 triplets is too small"),
])
def test_non_positive_or_non_finite_numbers(tiny_ldm, tiny_vae, tmp_path, capsys, main, args, message):
    if main is infer_main:
        args = ["--checkpoint_path", str(tiny_ldm), "--text", "A bell", "--output_dir", str(tmp_path / "out"), *args]
    elif main is eval_vae_main:
        args = ["--vae", str(tiny_vae), *args]
    elif main is train_main:
        args = ["--config", "egs/tta/autoencoderkl/exp_config_debug.json", "--exp_name", "x", f"--set=output_dir={tmp_path}", *args]
    else:
        args = ["--dataset", "SynthCaps", "--processed_dir", str(tmp_path), *args]
    assert message in one_line_error(main, args, capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_truncated_weights_in_an_export_and_a_checkpoint(tiny_ldm, tiny_synthcaps, tiny_vae, tiny_t5, tmp_path, capsys):
    exp = tmp_path / "ldm"
    shutil.copytree(tiny_ldm, exp)
    weights = exp / "export" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    line = one_line_error(infer_main, ["--checkpoint_path", str(exp), "--text", "A bell", "--output_dir", str(tmp_path / "o")], capsys)
    assert f"{weights.parent}: the U-Net could not be loaded" in line
    step = next((exp / "checkpoints").iterdir())
    (step / "unet.safetensors").write_bytes((step / "unet.safetensors").read_bytes()[:500])
    sets = [f"data.processed_dir={tiny_synthcaps}", f"output_dir={tmp_path}", f"model.autoencoder_path={tiny_vae}",
            f"text_encoder.name_or_path={tiny_t5}", "unet.cross_attention_dim=32", "train.max_steps=4", "model.valid_samples=0"]
    line = one_line_error(train_main, ["--config", "egs/tta/audioldm/exp_config_debug.json", "--exp_name", "ldm", "--resume",
                                       *[f"--set={s}" for s in sets]], capsys)
    assert f"{step / 'unet.safetensors'}: the checkpoint's unet could not be loaded" in line
    line = one_line_error(infer_main, ["--checkpoint_path", str(step), "--text", "A bell", "--output_dir", str(tmp_path / "o")], capsys)
    assert "the checkpoint U-Net could not be loaded" in line


@pytest.mark.parametrize("device, message", [
    ("cuda:99", "--device cuda:99: this machine has no such device"),  # was torch's AssertionError traceback
    ("gpu", "--device 'gpu' is not a device name"),
])
def test_a_device_this_machine_lacks(tiny_ldm, tmp_path, capsys, device, message):
    args = ["--checkpoint_path", str(tiny_ldm), "--text", "A bell", "--output_dir", str(tmp_path / "out"), "--device", device]
    assert message in one_line_error(infer_main, args, capsys)
    assert message in one_line_error(evaluate_main, ["--generated", str(tmp_path), "--reference", str(tmp_path / "test.json"), "--device", device], capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval.json").exists()


def test_the_app_on_a_port_it_cannot_serve(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(webapp_main, ["--port", str(port)], capsys)  # was gradio's traceback after the model load
    assert f"--host 127.0.0.1 --port {port} cannot be served" in line
    assert "--port 99999 is not a TCP port" in one_line_error(webapp_main, ["--port", "99999"], capsys)
