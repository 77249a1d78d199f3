import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import SpeechT5HifiGan

from bins.tta.inference import main as infer_main
from conftest import AUDIOCAPS_TABLES, REPO
from evaluation.mel_metrics import mel_metrics
from models.tta.audioldm.model import text_condition
from models.tta.audioldm.pipeline import SAMPLERS, TTAPipeline
from models.vocoder import load_vocoder
from models.vocoder.griffinlim import GriffinLim
from models.vocoder.hifigan import HiFiGANConfig, build_generator
from utils.cli import run_main
from utils.errors import UserError
from utils.mel import MelConfig, MelFrontEnd


@pytest.fixture(scope="module")
def pipe(tiny_ldm):
    return TTAPipeline.from_experiment(tiny_ldm)


def test_same_seed_same_audio(pipe):
    a = pipe(["A dog barks"], seed=3, num_steps=3)
    b = pipe(["A dog barks"], seed=3, num_steps=3)
    c = pipe(["A dog barks"], seed=4, num_steps=3)
    assert torch.equal(a.wav, b.wav) and not torch.equal(a.wav, c.wav)
    assert a.mel.shape == (1, 64, 128) and a.wav.shape == (1, 128 * 160)


def test_batched_cfg_equals_two_separate_passes(pipe):
    cond = pipe.text.encode(["A dog barks", "Wind blows"])
    uncond = pipe.text.null(2)
    from models.tta.audioldm.text_encoder import join

    emb, mask = join(uncond, cond)
    z = torch.randn(2, 4, 64, 32, generator=torch.Generator().manual_seed(0))  # [B, C, T / f, n_mels / f]
    t = torch.tensor(500)
    with torch.no_grad():
        batched = pipe.predict(z, t, text_condition(pipe.unet, emb, mask), guidance=3.0)
        n = emb.shape[0] // 2
        e_u = pipe.unet(z, t, **text_condition(pipe.unet, emb[:n], mask[:n])).sample
        e_c = pipe.unet(z, t, **text_condition(pipe.unet, emb[n:], mask[n:])).sample
    torch.testing.assert_close(batched, e_u + 3.0 * (e_c - e_u), atol=1e-5, rtol=1e-4)


def test_initial_noise_is_time_major_and_drawn_per_clip(pipe, monkeypatch):
    """z_T of clip i is torch.randn([1, C, T / f, n_mels / f]) from a CPU generator seeded seed + i."""
    seen = []
    real = pipe.unet.forward
    monkeypatch.setattr(pipe.unet, "forward", lambda z, *a, **k: seen.append(z.clone()) or real(z, *a, **k))
    pipe(["A dog barks", "Wind blows"], seed=7, num_steps=1, guidance_scale=1.0, sampler="ddim")
    want = torch.cat([torch.randn((1, 4, 64, 32), generator=torch.Generator().manual_seed(7 + i)) for i in range(2)])
    torch.testing.assert_close(seen[0], want)


def test_a_clip_does_not_depend_on_its_batch(tiny_ldm, tmp_path):
    """--batch_size 1, 3 and 8 give the same clips, with a sampler that draws noise at every step too. Batched
    float arithmetic differs in the last bits between batch sizes, and Griffin-Lim's iterations amplify that in
    the waveform's phase (a correlation of 0.998 on one CI machine), so the clips are compared by their log-mels:
    a batched clip's is within 0.01 of its unbatched one's on average (2e-5 to 8e-5 measured), another clip's 0.25 away."""
    prompts = [f"--text=A bell rings {i} times" for i in range(8)]
    mels = {}
    for batch in (1, 3, 8):
        out = tmp_path / f"b{batch}"
        assert infer_main(["--checkpoint_path", str(tiny_ldm), *prompts, "--num_steps", "1", "--sampler", "euler_a",
                           "--batch_size", str(batch), "--output_dir", str(out), "--seed", "4"]) == 0
        wavs = np.stack([sf.read(p, dtype="float32")[0] for p in sorted(out.glob("*.wav"))])
        mels[batch] = MelFrontEnd(MelConfig())(torch.from_numpy(wavs))
        assert [json.loads(line)["seed"] for line in (out / "prompts.jsonl").read_text().splitlines()] == list(range(4, 12))

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean(dim=(1, 2))  # mean |log-mel difference| per clip

    assert (distance(mels[1], mels[1].roll(1, dims=0)) > 0.1).all()
    for batch in (3, 8):
        assert (distance(mels[1], mels[batch]) < 0.01).all()


def test_export_of_the_transposed_layout_is_refused(tiny_ldm, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_ldm / "export", old)
    meta = json.loads((old / "tta_artifact.json").read_text())
    (old / "tta_artifact.json").write_text(json.dumps({**meta, "format_version": 1}))
    with pytest.raises(UserError, match=r"older version of this toolkit .*\[T, n_mels\] layout"):
        TTAPipeline.from_experiment(old)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_runs(pipe, sampler):
    out = pipe(["A bell rings"], sampler=sampler, num_steps=3, seed=0)
    assert out.wav.shape == (1, 128 * 160) and torch.isfinite(out.wav).all()


def test_duration_rounds_to_the_latent_stride(pipe):
    stride = pipe.frame_stride  # VAE 2x * U-Net 2x = 4 frames
    assert stride == 4
    out = pipe(["A bell rings"], duration=0.5, num_steps=2, num_samples=2)
    frames = int(round(0.5 * 100 / stride)) * stride
    assert out.mel.shape == (2, 64, frames) and out.wav.shape == (2, frames * 160)
    assert out.seconds == pytest.approx(frames / 100)
    assert pipe.frames_for(0.001) == stride
    with pytest.raises(UserError, match="duration"):
        pipe(["x"], duration=600)
    with pytest.raises(UserError, match="empty prompt"):
        pipe(["  "])
    with pytest.raises(UserError, match="unknown sampler 'fast'"):
        pipe(["x"], sampler="fast")
    with pytest.raises(UserError, match="--num_samples must be at least 1, got 0"):  # was max() of an empty sequence
        pipe(["x"], num_samples=0)
    for seed in (-1, 2**70, 2.5):  # the app passes its Seed field on: 2**70 was torch's "Overflow when unpacking long"
        with pytest.raises(UserError, match=f"--seed must be a whole number from 0 to .*, got {seed}"):
            pipe(["x"], seed=seed, num_steps=1)


def test_cli_writes_wavs_pngs_and_manifest(tiny_ldm, tmp_path, capsys):
    out = tmp_path / "gen"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A dog barks\nRain falls on a roof\n\nA man speaks\n")
    assert infer_main(["--checkpoint_path", str(tiny_ldm), "--text_file", str(prompts), "--output_dir", str(out),
                       "--num_steps", "2", "--batch_size", "2", "--sampler", "ddim"]) == 0
    rows = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["A dog barks", "Rain falls on a roof", "A man speaks"]
    for r in rows:
        wav, sr = sf.read(out / r["wav"])
        assert sr == 16000 and len(wav) == 128 * 160 and (out / r["png"]).stat().st_size > 1000
    printed = capsys.readouterr().out
    assert str(out / rows[0]["wav"]) in printed and "real-time factor" in printed


def test_a_stopped_run_keeps_the_manifest_of_the_clips_it_wrote(tiny_ldm, tmp_path, monkeypatch):
    """Before, prompts.jsonl was written after the last batch only: Ctrl-C left wavs no manifest names."""
    real, calls = TTAPipeline.__call__, []

    def stopped_in_batch_2(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TTAPipeline, "__call__", stopped_in_batch_2)
    out = tmp_path / "gen"
    with pytest.raises(KeyboardInterrupt):
        infer_main(["--checkpoint_path", str(tiny_ldm), "--text", "A dog barks", "--text", "Rain", "--text", "A man speaks",
                    "--output_dir", str(out), "--num_steps", "1", "--batch_size", "2"])
    rows = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["A dog barks", "Rain"]
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(r["wav"] for r in rows)


def test_each_run_without_output_dir_gets_a_new_folder(tiny_ldm, tmp_path):
    """The default folder used to be <exp>/inference for every run: a second run wrote over the first's clips
    and manifest."""
    exp = shutil.copytree(tiny_ldm, tmp_path / "exp")
    (exp / "inference" / "007").mkdir(parents=True)  # numbers continue after the highest present
    for _ in range(2):
        assert infer_main(["--checkpoint_path", str(exp), "--text", "A dog barks", "--num_steps", "1"]) == 0
    runs = sorted(p.name for p in (exp / "inference").iterdir())
    assert runs == ["007", "008", "009"] and (exp / "inference" / "008" / "0000_a_dog_barks.wav").exists()


def test_real_audiocaps_captions_in_batch(tiny_ldm, tmp_path):
    out = tmp_path / "ac"
    assert infer_main(["--checkpoint_path", str(tiny_ldm), "--captions", str(AUDIOCAPS_TABLES / "test.csv"), "--limit", "12",
                       "--output_dir", str(out), "--num_steps", "1", "--batch_size", "6"]) == 0
    assert len((out / "prompts.jsonl").read_text().splitlines()) == 12


def test_prompt_files_saved_by_excel_or_notepad(tiny_ldm, tmp_path):
    """UTF-8 with a byte-order mark: the CSV's 'caption' column was not found ('\\ufeffcaption') and the text
    file's first prompt began with an invisible U+FEFF that went to the text encoder."""
    table, lines = tmp_path / "excel.csv", tmp_path / "notepad.txt"
    table.write_bytes("caption\r\nA dog barks\r\n".encode("utf-8-sig"))
    lines.write_bytes("Rain falls\r\n".encode("utf-8-sig"))
    for option, path in (("--captions", table), ("--text_file", lines)):
        out = tmp_path / option.strip("-")
        assert infer_main(["--checkpoint_path", str(tiny_ldm), option, str(path), "--output_dir", str(out), "--num_steps", "1"]) == 0
        assert [json.loads(r)["prompt"] for r in (out / "prompts.jsonl").read_text().splitlines()] == [
            {"--captions": "A dog barks", "--text_file": "Rain falls"}[option]]


@pytest.mark.parametrize("name, content, message", [
    ("latin1.txt", "caf\xe9 music\n".encode("latin-1"), "latin1.txt is not UTF-8 text (byte 3"),  # was UnicodeDecodeError
    ("latin1.csv", "caption\ncaf\xe9\n".encode("latin-1"), "latin1.csv is not UTF-8 text"),
    ("cut.json", b'[{"Caption": "A', "cut.json is not valid JSON"),  # was JSONDecodeError
    ("rows.json", b'[{"caption": "A dog"}]', "not a prepared split (a list of rows, each with a 'Caption')"),  # was KeyError
])
def test_prompt_files_that_cannot_be_read_are_one_line(tiny_ldm, tmp_path, capsys, name, content, message):
    (tmp_path / name).write_bytes(content)
    option = "--text_file" if name.endswith(".txt") else "--captions"
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: infer_main(["--checkpoint_path", str(tiny_ldm), option, str(tmp_path / name), "--output_dir", str(tmp_path / "o")]))
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "\n" not in err and message in err, err
    assert not (tmp_path / "o").exists()


def test_shell_script_under_sh_uses_newest_experiment(tiny_ldm, tmp_path):
    res = subprocess.run(
        ["sh", "egs/tta/audioldm/run_inference.sh", "--text", "A man is whistling", "--num_steps", "2",
         "--experiments_root", str(tiny_ldm.parent), "--output_dir", str(tmp_path / "sh")],
        cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"using the newest experiment: {tiny_ldm}" in res.stdout
    assert (tmp_path / "sh" / "0000_a_man_is_whistling.wav").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", ""], "error: empty --text"),
        (["--text", "hi", "--checkpoint_path", "/nonexistent/exp"], "error: --checkpoint_path /nonexistent/exp does not exist"),
        (["--text", "hi", "--sampler", "warp"], "error: unknown sampler 'warp'"),
        (["--text", "hi", "--duration", "1000"], "error: --duration 1000.0 must be in"),
        (["--text", "hi", "--vocoder", "hifigan"], "error: --vocoder hifigan needs --vocoder_path"),
        (["--text", "hi", "--vocoder", "hifigan", "--vocoder_path", "/nowhere"], "error: --vocoder_path /nowhere: no HiFi-GAN folder"),
    ],
)
def test_bad_input_is_one_line(tiny_ldm, args, message, capsys):
    if "--checkpoint_path" not in args:
        args = [*args, "--checkpoint_path", str(tiny_ldm)]
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: infer_main(args))
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), lines


def test_bad_input_exits_2_as_a_process():
    res = subprocess.run([sys.executable, "bins/tta/inference.py", "--text", " "], cwd=REPO, capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2 and res.stderr == "error: empty --text: give a non-empty prompt\n"


def test_griffinlim_reconstructs_a_known_signal():
    cfg = MelConfig(segment_seconds=1.0, target_frames=100)
    front = MelFrontEnd(cfg)
    t = torch.arange(16000) / 16000
    wav = 0.5 * torch.sin(2 * math.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * math.pi * 3 * t))
    mel = front(wav)[None, :, :100]
    rec = GriffinLim(cfg)(mel)
    assert rec.shape == (1, 100 * 160)
    again = front(rec[0])[None, :, :100]
    got = mel_metrics(mel[:, :, 2:-2], again[:, :, 2:-2])
    other = front(0.5 * torch.sin(2 * math.pi * 1000 * t))[None, :, :100]  # an unrelated tone as the scale
    baseline = mel_metrics(mel[:, :, 2:-2], other[:, :, 2:-2])
    assert got["mel_l1"] < 0.8 and got["lsd_db"] < 12 and got["mel_l1"] < 0.3 * baseline["mel_l1"]
    spectrum = np.abs(np.fft.rfft(rec[0].numpy()))
    assert abs(np.fft.rfftfreq(len(rec[0]), 1 / 16000)[spectrum.argmax()] - 440) < 30


def test_griffinlim_iteration_is_librosas():
    """The batched torch iteration must give librosa.griffinlim's waveform (same start, momentum, padding), to
    float32 rounding, for every clip of a batch larger than one pass."""
    import librosa

    cfg = MelConfig(segment_seconds=0.64, target_frames=64)
    t = torch.arange(cfg.segment_samples) / 16000
    clips = [0.5 * torch.sin(2 * math.pi * f * t * (1 + t)) * (t % 0.2 < 0.1) for f in (200, 500, 900, 1500, 2500)]
    vocoder, logmel = GriffinLim(cfg), MelFrontEnd(cfg)(torch.stack(clips))
    mag = vocoder.magnitudes(np.exp(logmel.numpy()))
    got = vocoder(logmel)
    frames = logmel.shape[-1]
    assert got.shape == (5, frames * 160)
    for m, wav in zip(mag, got.numpy()):
        ref = librosa.griffinlim(m, n_iter=32, hop_length=160, win_length=1024, window="hann", center=True,
                                 length=(frames - 1) * 160, random_state=0)
        err = np.abs(wav[: len(ref)] - ref)
        assert err.max() < 1e-2 * np.abs(ref).max() and err.mean() < 1e-4 * np.abs(ref).max()
        assert not wav[len(ref) :].any()


def test_griffinlim_magnitudes_are_librosas_nnls(monkeypatch):
    """The vocoder skips librosa's NNLS set-up where librosa would stop at its starting point (most of the
    vocoder's time before), and must return exactly what librosa's `mel_to_stft` does, including where it would
    not stop there (a random spectrum, for which it falls back to librosa)."""
    import librosa

    cfg = MelConfig(segment_seconds=0.32, target_frames=32)
    t = torch.arange(cfg.segment_samples) / 16000
    clips = [0.5 * torch.sin(2 * math.pi * f * t) * (t < 0.2) for f in (300, 900, 2500)]
    real = np.exp(MelFrontEnd(cfg)(torch.stack(clips)).numpy())
    noise = np.exp(np.random.default_rng(0).normal(0, 2, (1, cfg.n_mels, real.shape[-1]))).astype(np.float32)
    mels = np.concatenate([real, noise])
    reference = [librosa.feature.inverse.mel_to_stft(m, sr=16000, n_fft=cfg.n_fft, power=1.0, fmin=cfg.fmin, fmax=cfg.fmax)
                 for m in mels]
    solved = []
    real_nnls = librosa.feature.inverse.mel_to_stft
    monkeypatch.setattr(librosa.feature.inverse, "mel_to_stft", lambda m, **kw: solved.append(m) or real_nnls(m, **kw))
    assert np.array_equal(GriffinLim(cfg).magnitudes(mels), np.stack(reference))
    assert len(solved) == 1 and np.array_equal(solved[0], noise[0])  # librosa ran for the random spectrum only


def test_hifigan_loads_from_a_saved_folder(tmp_path):
    cfg = MelConfig()
    small = HiFiGANConfig([5, 4, 2, 2, 2], [10, 8, 4, 4, 4], 32, [3], [[1, 3]])
    build_generator(small, cfg).save_pretrained(str(tmp_path / "vocoder"))
    voc = load_vocoder("hifigan", str(tmp_path), cfg)
    assert isinstance(voc.generator, SpeechT5HifiGan)
    assert voc(torch.randn(2, 64, 50)).shape == (2, 50 * 160)
    with pytest.raises(UserError, match="vocoder takes 64 mels at 16000 Hz with hop 160, but the model makes 80 mels"):
        load_vocoder("hifigan", str(tmp_path / "vocoder"), MelConfig(n_mels=80))
    with pytest.raises(UserError, match="multiply to 80"):
        build_generator(HiFiGANConfig([5, 4, 2, 2], [10, 8, 4, 4], 32, [3], [[1, 3]]), cfg)


def test_a_vocoder_path_means_that_hifigan(tiny_ldm, tmp_path):
    """`--vocoder_path DIR` alone decoded with Griffin-Lim, and `--vocoder griffinlim --vocoder_path DIR` dropped the
    path: both without a word."""
    small = HiFiGANConfig([5, 4, 2, 2, 2], [10, 8, 4, 4, 4], 32, [3], [[1, 3]])
    build_generator(small, MelConfig()).save_pretrained(str(tmp_path / "voc" / "vocoder"))
    pipe = TTAPipeline.from_experiment(tiny_ldm, vocoder_path=str(tmp_path / "voc"))
    assert isinstance(pipe.vocoder.generator, SpeechT5HifiGan)
    with pytest.raises(UserError, match="--vocoder_path .*voc is for --vocoder hifigan; Griffin-Lim has no weights"):
        TTAPipeline.from_experiment(tiny_ldm, "griffinlim", str(tmp_path / "voc"))


def test_checkpoint_inference_uses_the_ema_weights_and_needs_no_export(tiny_ldm, tmp_path):
    """--checkpoint_path <exp>/checkpoints/step_*: the EMA U-Net of that step (not the raw training weights),
    built from the run's config, also when the experiment has no export yet."""
    import shutil

    from safetensors.torch import load_file

    exp = tmp_path / "exp"
    shutil.copytree(tiny_ldm, exp, ignore=shutil.ignore_patterns("export"))
    step = sorted((exp / "checkpoints").glob("step_*"))[-1]
    pipe = TTAPipeline.from_checkpoint(step)
    shadow = torch.load(step / "state.pt", weights_only=True)["ema"]["shadow_params"]
    for p, s in zip(pipe.unet.parameters(), shadow):
        torch.testing.assert_close(p, s)
    raw = load_file(str(step / "unet.safetensors"))
    assert any(not torch.equal(raw[k], v) for k, v in pipe.unet.state_dict().items())
    assert infer_main(["--checkpoint_path", str(step), "--text", "A dog barks", "--num_steps", "2", "--output_dir", str(tmp_path / "gen")]) == 0
    assert len(list((tmp_path / "gen").glob("*.wav"))) == 1
