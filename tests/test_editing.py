"""Zero-shot editing on the tiny trained pipeline: audio-to-audio, inpainting, continuation and long audio,
super-resolution, best-of-N candidates, and the one-line errors of bad edit input."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from bins.tta.inference import main as infer_main
from models.tta.audioldm.editing import Edit, plan_windows
from models.tta.audioldm.pipeline import TTAPipeline
from models.tta.autoencoderkl.model import image_to_mel, mel_to_image
from preprocessors.synthcaps import Attributes, synthesize
from utils.errors import UserError
from utils.mel import MelFrontEnd

SR = 16000


@pytest.fixture(scope="module")
def pipe(tiny_ldm):
    return TTAPipeline.from_experiment(tiny_ldm)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """1.28 s (the tiny model's training length) of a pulsing bell."""
    return synthesize(Attributes("bell", "medium", "pulses"), 1.28, SR, seed=1)


def round_trip(pipe, wav: np.ndarray, frames: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent, log-mel) of the clip's first `frames` mel frames through the VAE, with the VAE's own calls."""
    mel = MelFrontEnd(pipe.mel_cfg)(torch.from_numpy(wav))[None, :, :frames]
    with torch.no_grad():
        z = pipe.vae.encode(mel_to_image(mel)).latent_dist.mode()
        return z * pipe.vae.config.scaling_factor, image_to_mel(pipe.vae.decode(z).sample)


def latents_of(pipe, monkeypatch) -> list[torch.Tensor]:
    """Collects the latents each call decodes."""
    seen, real = [], pipe.decode
    monkeypatch.setattr(pipe, "decode", lambda z: seen.append(z.clone()) or real(z))
    return seen


def test_strength_one_is_plain_generation_and_near_zero_is_the_round_trip(pipe, clip):
    plain = pipe(["A bell rings"], seed=5, num_steps=3, sampler="ddim")
    full = pipe(["A bell rings"], seed=5, num_steps=3, sampler="ddim", edit=Edit([clip], strength=1.0))
    assert torch.equal(plain.wav, full.wav)
    _, rec = round_trip(pipe, clip)
    none = pipe(["A bell rings"], num_steps=10, edit=Edit([clip], strength=0.05))  # 0.05 x 10 steps: no step runs
    torch.testing.assert_close(none.mel, rec, atol=1e-5, rtol=1e-5)
    weak, strong = (pipe(["A bell rings"], num_steps=10, sampler=s, edit=Edit([clip], strength=k)).mel
                    for s, k in (("dpm++", 0.2), ("euler", 0.9)))
    assert (weak - rec).abs().mean() < (strong - rec).abs().mean()  # more strength, further from the clip


def test_inversion_with_the_clips_own_caption_gives_the_clip_back(pipe, clip, monkeypatch):
    seen = latents_of(pipe, monkeypatch)
    z0, _ = round_trip(pipe, clip)
    for strength in (0.5, 1.0):  # half the steps, and all of them: the residuals carry the clip either way
        pipe(["A bell rings"], num_steps=6, edit=Edit([clip], strength=strength, source_prompt="A bell rings"))
        torch.testing.assert_close(seen[-1], z0, atol=1e-4, rtol=1e-4)
    pipe(["A drum is hit"], num_steps=6, edit=Edit([clip], strength=1.0, source_prompt="A bell rings"))
    pipe(["A drum is hit"], num_steps=6, edit=Edit([clip], strength=1.0))
    inverted, noised = seen[-2:]
    assert not torch.allclose(inverted, z0, atol=1e-2)  # another caption moves it
    assert (inverted - z0).abs().mean() < (noised - z0).abs().mean()  # and keeps more of it than SDEdit from noise


def test_inversion_options_are_checked(pipe, clip):
    with pytest.raises(UserError, match="give it with --strength"):
        pipe(["A bell"], num_steps=2, edit=Edit([clip], inpaint=[(0.2, 0.4)], source_prompt="A bell"))
    with pytest.raises(UserError, match="--source_prompt is empty"):
        pipe(["A bell"], num_steps=2, edit=Edit([clip], strength=0.5, source_prompt=" "))
    with pytest.raises(UserError, match="leave --sampler out"):
        pipe(["A bell"], num_steps=2, sampler="dpm++", edit=Edit([clip], strength=0.5, source_prompt="A bell"))


def test_inpainting_keeps_the_rest_exactly_in_latent_space(pipe, clip, monkeypatch):
    seen = latents_of(pipe, monkeypatch)
    z0, rec = round_trip(pipe, clip)
    out = pipe(["A drum is hit"], num_steps=4, sampler="ddim", edit=Edit([clip], inpaint=[(0.4, 0.72)], resample=2))
    z = seen[0]
    span = slice(20, 36)  # 0.4 s / 0.02 s per latent frame .. 0.72 s
    keep = torch.ones(z.shape[2], dtype=torch.bool)
    keep[span] = False
    assert torch.equal(z[:, :, keep], z0[:, :, keep]) and not torch.allclose(z[:, :, span], z0[:, :, span])
    # outside the span (and the decoder's reach) the audio is the round trip's, up to the decoder's GroupNorm
    # statistics, which span the whole clip
    far = torch.ones(128, dtype=torch.bool)
    far[30:82] = False
    mel = MelFrontEnd(pipe.mel_cfg)(torch.from_numpy(clip))[None, :, :128]
    assert (out.mel - mel)[..., far].abs().mean() <= 1.1 * (rec - mel)[..., far].abs().mean()


def test_super_resolution_keeps_the_low_bands(pipe, clip, monkeypatch):
    seen = latents_of(pipe, monkeypatch)
    z0, _ = round_trip(pipe, clip)
    pipe(["A bell rings"], num_steps=3, edit=Edit([clip], super_resolution=3000.0))
    low = 11  # latent bins whose mel bands (2 each) are all centred below 3 kHz
    assert torch.equal(seen[0][..., :low], z0[..., :low]) and not torch.allclose(seen[0][..., low:], z0[..., low:])


def test_continuation_and_long_audio_join_without_jumps(pipe, clip, monkeypatch):
    seen = latents_of(pipe, monkeypatch)
    z0, _ = round_trip(pipe, clip[: SR // 2], 48)  # 0.5 s: 51 mel frames, 48 at the latent stride -> 24 latent
    out = pipe(["A bell rings"], num_steps=2, duration=3.2, edit=Edit([clip[: SR // 2]]))
    assert out.wav.shape[1] == 320 * 160 and seen[0].shape[2] == 160
    assert torch.equal(seen[0][:, :, :24], z0) and not torch.allclose(seen[0][:, :, 24:48], z0)
    long = pipe(["A bell rings"], num_steps=2, duration=3.84).wav[0].numpy()  # 3 windows of 1.28 s, half overlap
    diffs = np.abs(np.diff(long))
    joins = [int(s * SR) for s in (1.28, 1.92, 2.56, 3.2)]
    near = np.zeros_like(diffs, dtype=bool)
    for j in joins:
        near[j - 160: j + 160] = True
    assert diffs[near].max() <= diffs[~near].max()


def test_continuation_resamples_each_step_when_asked(pipe, clip, monkeypatch):
    """`resample` was once ignored in continuation and audio-to-audio: the same audio with 2 as with 1, no check."""
    seen = latents_of(pipe, monkeypatch)
    z0, _ = round_trip(pipe, clip[: SR // 2], 48)
    for resample in (1, 2):
        pipe(["A bell rings"], num_steps=2, sampler="ddim", duration=1.28, edit=Edit([clip[: SR // 2]], resample=resample))
    once, twice = seen[-2:]
    assert torch.equal(twice[:, :, :24], z0) and not torch.allclose(once, twice)
    with pytest.raises(UserError, match="stateless sampler"):
        pipe(["A bell rings"], num_steps=2, sampler="dpm++", duration=1.28, edit=Edit([clip[: SR // 2]], resample=2))
    with pytest.raises(UserError, match="not to --strength"):  # audio-to-audio has no kept region to resample
        pipe(["A bell rings"], num_steps=2, sampler="ddim", edit=Edit([clip], strength=0.5, resample=2))


def test_window_plan_keeps_the_clip_and_covers_the_length():
    assert [(w.frames, w.keep) for w in plan_windows(0, 64, 64, 32)] == [(64, 0)]
    plan = plan_windows(12, 80, 64, 32)  # a 12-frame clip continued to 80: all of it kept, then 32 of context
    assert [(w.frames, w.keep) for w in plan] == [(64, 12), (64, 48)]
    assert 12 + sum(w.frames - w.keep for w in plan) == 80
    with pytest.raises(UserError, match="overlap"):
        plan_windows(0, 64, 64, 64)


def test_candidates_keep_the_best_by_the_scorer(pipe):
    loudness = lambda wavs, sr, prompt: wavs.abs().mean(dim=1)  # noqa: E731 - any scorer will do
    all4 = pipe(["A bell rings", "Wind blows"], seed=3, num_steps=2, num_samples=2)
    best = pipe(["A bell rings", "Wind blows"], seed=3, num_steps=2, num_candidates=2, scorer=loudness)
    for k, pair in enumerate((slice(0, 2), slice(2, 4))):
        i = int(loudness(all4.wav[pair], SR, "").argmax()) + pair.start
        assert best.seeds[k] == 3 + i and torch.equal(best.wav[k], all4.wav[i])


def test_cli_edits_write_settings_and_clap_keeps_candidates(tiny_ldm, clip, tmp_path):
    from published_layouts import save_tiny_clap

    init = tmp_path / "bell.wav"
    sf.write(init, clip, SR)
    out = tmp_path / "edit"
    assert infer_main(["--checkpoint_path", str(tiny_ldm), "--text", "A drum is hit", "--init_audio", str(init),
                       "--inpaint", "0.2:0.6", "--num_steps", "2", "--num_candidates", "2", "--clap",
                       str(save_tiny_clap(tmp_path / "clap")), "--output_dir", str(out)]) == 0
    row = json.loads((out / "prompts.jsonl").read_text())
    assert row["edit"] == "inpainting" and row["inpaint"] == [[0.2, 0.6]] and row["seed"] in (0, 1)
    assert -1 <= row["clap_score"] <= 1 and sf.info(out / row["wav"]).frames == 128 * 160
    assert infer_main(["--checkpoint_path", str(tiny_ldm), "--text", "A drum is hit", "--init_audio", str(init), "--strength",
                       "0.8", "--source_prompt", "A bell rings", "--num_steps", "2", "--output_dir", str(tmp_path / "inv")]) == 0
    row = json.loads((tmp_path / "inv" / "prompts.jsonl").read_text())
    assert row["edit"] == "audio_to_audio" and row["source_prompt"] == "A bell rings" and row["strength"] == 0.8


@pytest.mark.parametrize("args, message", [
    (["--init_audio", "{missing}", "--strength", "0.5"], "not found"),
    (["--init_audio", "{folder}", "--strength", "0.5"], "is a folder, not a file"),
    (["--init_audio", "{corrupt}", "--strength", "0.5"], "unreadable audio"),
    (["--init_audio", "{silent}", "--strength", "0.5"], "silent"),
    (["--init_audio", "{long}", "--strength", "0.5"], "longer than 60 s"),
    (["--init_audio", "{clip}", "--strength", "1.5"], r"--strength 1.5 must be in \(0, 1\]"),
    (["--init_audio", "{clip}", "--strength", "0"], r"must be in \(0, 1\]"),
    (["--init_audio", "{clip}", "--inpaint", "1.0:2.0"], "within the clip"),
    (["--init_audio", "{clip}", "--inpaint", "0.2:0.6", "--inpaint", "0.5:0.9"], "overlap"),
    (["--init_audio", "{clip}", "--inpaint", "0.6-0.9"], "START:END"),
    (["--init_audio", "{clip}", "--super_resolution", "9000"], r"\(0, 8000\) Hz"),
    (["--init_audio", "{clip}", "--strength", "0.5", "--inpaint", "0.2:0.6"], "different edits"),
    (["--strength", "0.5"], "give it with --init_audio"),
    (["--init_audio", "{clip}"], "needs an edit"),
    (["--init_audio", "{clip}", "--duration", "1.0"], "must be longer than"),
    (["--init_audio", "{clip}", "--inpaint", "0.2:0.6", "--sampler", "heun"], "cannot inpaint"),
    (["--init_audio", "{clip}", "--inpaint", "0.2:0.6", "--resample", "2", "--sampler", "dpm++"], "stateless sampler"),
    (["--init_audio", "{clip}", "--strength", "0.5", "--resample", "2"], "--resample applies to --inpaint, --super_resolution and continuation"),
    (["--num_candidates", "3"], "needs a scorer"),
    (["--init_audio", "{clip}", "--inpaint", "0.2:0.6", "--source_prompt", "A bell"], "give it with --init_audio F --strength S"),
])
def test_bad_edit_input_is_one_line(tiny_ldm, clip, tmp_path, args, message):
    files = {"missing": tmp_path / "nope.wav", "corrupt": tmp_path / "bad.wav", "silent": tmp_path / "silent.wav",
             "long": tmp_path / "long.wav", "clip": tmp_path / "clip.wav", "folder": tmp_path}
    files["corrupt"].write_bytes(b"RIFF0000WAVEjunk")
    sf.write(files["silent"], np.zeros(SR, dtype=np.float32), SR)
    sf.write(files["long"], np.full(61 * 8000, 0.1, dtype=np.float32), 8000)
    sf.write(files["clip"], clip, SR)
    args = [a.format(**files) for a in args]
    with pytest.raises(UserError, match=message):
        infer_main(["--checkpoint_path", str(tiny_ldm), "--text", "A bell", "--num_steps", "1",
                    "--output_dir", str(tmp_path / "out"), *args])
    assert not (tmp_path / "out").exists()


def test_editing_bench_cases_do_not_depend_on_which_ran_before(pipe, clip):
    """The bench's inpainting row was once drawn from prompts that depended on whether audio-to-audio ran first."""
    from evaluation.editing import Clip, EditingBench

    clips = [Clip(clip, Attributes("bell", "medium", "pulses"), "a bell rings in pulses")] * 3
    alone = EditingBench(pipe, clips).inpainting()
    after = EditingBench(pipe, clips)
    after.audio_to_audio(strengths=(0.5,))
    second = after.inpainting()
    for row in (alone, second):
        row.pop("seconds_per_clip")
    assert second == alone
