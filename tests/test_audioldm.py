import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from bins.tta.train import main as train_main
from conftest import REPO
from models.base.trainer import Trainer
from models.tta.audioldm.task import AudioLDMTask
from models.tta.audioldm.text_encoder import NULL_PROMPT, TextEncoder, TextEncoderConfig
from utils.config import load_config
from utils.errors import UserError

DEBUG = "egs/tta/audioldm/exp_config_debug.json"


def t5_sets(tiny_t5):
    return [f"text_encoder.name_or_path={tiny_t5}", "unet.cross_attention_dim=32"]


def ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *extra):
    sets = [f"data.processed_dir={tiny_synthcaps}", f"output_dir={tmp_path / 'ckpts'}", f"model.autoencoder_path={tiny_vae}", *extra]
    return load_config(DEBUG, AudioLDMTask.Config, sets)


def test_standin_t5_tokenizer_is_the_same_in_every_process(tmp_path):
    """The tiny T5's tokenizer, built in two fresh processes (Python hash seeds differing too), is the same file: every
    test on the tiny T5 then sees the same vocabulary (a trained Unigram vocabulary differed run to run)."""
    script = ("import sys; sys.path.insert(0, 'tests'); from conftest import AUDIOCAPS_TABLES; "
              "from standins import save_standin_t5; save_standin_t5(sys.argv[1], AUDIOCAPS_TABLES / 'train.csv')")
    for i, hash_seed in enumerate(("1", "9")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(tmp_path / str(i))], cwd=REPO, env=env, check=True)
    assert (tmp_path / "0" / "tokenizer.json").read_bytes() == (tmp_path / "1" / "tokenizer.json").read_bytes()


def test_t5_from_saved_folder_honours_padding(tiny_t5):
    enc = TextEncoder(TextEncoderConfig(str(tiny_t5), max_length=16, trainable=False))
    assert type(enc.model).__name__ == "T5EncoderModel" and enc.hidden_size == 32
    caps = ["A dog barks", "A man speaks while birds chirp in the distance, then a car passes by"]
    emb, mask = enc(caps)
    assert emb.shape[:2] == mask.shape and emb.shape[-1] == 32 and mask.shape[1] == 16  # truncated at max_length
    assert mask[0].sum() < mask[1].sum() and mask[0, 0] and not mask[0, -1]
    alone, alone_mask = enc(caps[:1])
    n = int(alone_mask.sum())
    torch.testing.assert_close(emb[0, :n], alone[0, :n], atol=1e-5, rtol=1e-4)  # padding does not leak in
    cached, cached_mask = enc.encode(caps)
    torch.testing.assert_close(cached[cached_mask], emb[mask], atol=1e-5, rtol=1e-4)
    null, null_mask = enc.null(2)
    assert null_mask.sum(dim=1).tolist() == [1, 1]  # "" -> just </s>
    assert NULL_PROMPT == ""


def test_caption_cache_is_bounded_and_kept_off_the_accelerator(tiny_t5, monkeypatch):
    from models.tta.audioldm import text_encoder

    monkeypatch.setattr(text_encoder, "CACHE_CAPTIONS", 3)
    enc = TextEncoder(TextEncoderConfig(str(tiny_t5), max_length=16, trainable=False))
    caps = [f"A dog barks {n} times" for n in ("one", "two", "three", "four", "five")]
    emb, mask = enc.encode(caps)
    assert list(enc._cache) == sorted(caps)[-3:] and all(v.device.type == "cpu" for v in enc._cache.values())
    ref, ref_mask = enc(caps)
    torch.testing.assert_close(emb[mask], ref[ref_mask], atol=1e-5, rtol=1e-4)
    again, again_mask = enc.encode(caps[:1])  # evicted, encoded again, now the most recent
    torch.testing.assert_close(again[again_mask], ref[0][ref_mask[0]], atol=1e-5, rtol=1e-4)
    assert list(enc._cache)[-1] == caps[0] and len(enc._cache) == 3


def test_builtin_minilm_loads_offline():
    enc = TextEncoder(TextEncoderConfig("builtin:all-minilm-l6-v2", max_length=32, trainable=False))
    assert enc.hidden_size == 384
    emb, mask = enc.encode(["a dog barks", "a puppy is barking", "an airplane engine roars"])
    pooled = torch.nn.functional.normalize((emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2]  # a real sentence encoder, not random weights


def test_projected_output_of_an_encoder_without_projection_head_is_its_mean_pooled_sentence_vector():
    """all-MiniLM-L6-v2 has no projection head: `projected` is sentence-transformers' own pooling (the masked
    mean of the token states, L2-normalised), one state per caption, batch padding not counted."""
    captions = ["a dog barks", "a small puppy is barking loudly at the door"]
    tokens = TextEncoder(TextEncoderConfig("builtin:all-minilm-l6-v2", max_length=32, trainable=False))
    sentence = TextEncoder(TextEncoderConfig("builtin:all-minilm-l6-v2", max_length=32, trainable=False, output="projected"))
    assert sentence.hidden_size == 384
    emb, mask = sentence.encode(captions)
    assert emb.shape == (2, 1, 384) and mask.all()
    for i, caption in enumerate(captions):  # each caption alone: no padding in its mean
        states, _ = tokens([caption])
        torch.testing.assert_close(emb[i, 0], torch.nn.functional.normalize(states[0].mean(0), dim=-1), atol=1e-5, rtol=1e-4)


def test_sentence_token_leads_the_token_states_and_survives_export(tiny_synthcaps, tiny_vae, tmp_path):
    """`tokens+sentence`: the token states after one leading token, the normalised sentence embedding at the
    caption's mean token norm (padding not counted); a model trained with it exports and samples with it."""
    from models.tta.audioldm.pipeline import TTAPipeline

    captions = ["a dog barks", "a small puppy is barking loudly at the door"]
    tokens = TextEncoder(TextEncoderConfig("builtin:all-minilm-l6-v2", max_length=32, trainable=False))
    both = TextEncoder(TextEncoderConfig("builtin:all-minilm-l6-v2", max_length=32, trainable=False, output="tokens+sentence"))
    assert both.hidden_size == 384
    emb, mask = both.encode(captions)
    for i, caption in enumerate(captions):
        states, _ = tokens([caption])
        n = states.shape[1]
        assert mask[i].sum() == n + 1 and mask[i, : n + 1].all()
        torch.testing.assert_close(emb[i, 1 : n + 1], states[0])
        sentence = torch.nn.functional.normalize(states[0].mean(0), dim=-1) * states[0].norm(dim=-1).mean()
        torch.testing.assert_close(emb[i, 0], sentence, atol=1e-5, rtol=1e-4)
    sets = ["text_encoder.output=tokens+sentence", "train.max_steps=2", "model.valid_samples=0"]
    export = Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *sets), "sentence").run()
    pipe = TTAPipeline.from_experiment(export)
    assert pipe.text.cfg.output == "tokens+sentence"
    assert torch.isfinite(pipe(["A dog barks"], seed=0, num_steps=2).mel).all()


def test_balance_by_reaches_the_training_split_only(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    plain = Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5)), "plain")
    balanced = Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5), "data.balance_by=sound_type"), "bal")
    assert len(balanced.train_dl.dataset) > len(plain.train_dl.dataset)
    assert balanced.valid_dl.dataset.rows == plain.valid_dl.dataset.rows


def test_unknown_text_encoder_is_a_clear_error():
    with pytest.raises(UserError, match="text encoder 'no-such/model' could not be loaded"):
        TextEncoder(TextEncoderConfig("no-such/model", 16, False))


def test_cfg_dropout_rate_and_null_rows(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    cfg, resolved = ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5))
    task = Trainer(AudioLDMTask, cfg, resolved, "cfg").task
    words = ["dog", "wind", "car", "man", "bird", "water", "engine", "music", "door", "bell"]  # in the tokenizer's vocab
    captions = [f"a {words[i % 10]} and a {words[i // 10 % 10]} near a {words[i // 100 % 10]}" for i in range(2000)]
    emb, mask = task.condition(captions, torch.Generator().manual_seed(0), dropout=0.3)
    null_emb, null_mask = task.text.null(1)
    n = int(null_mask.sum())
    is_null = (mask.sum(1) == n) & torch.isclose(emb[:, :n], null_emb[:, :n].expand(len(captions), -1, -1), atol=1e-5).all(-1).all(-1)
    assert 0.27 < is_null.float().mean() < 0.33
    # every kept row carries ITS OWN caption (not a neighbour's), padded to the batch length
    own, own_mask = task.text.encode(captions)
    kept = (~is_null).nonzero().squeeze(1)
    assert torch.equal(mask[kept, : own_mask.shape[1]], own_mask[kept])
    torch.testing.assert_close(emb[kept, : own.shape[1]], own[kept])
    emb0, _ = task.condition(captions[:8], torch.Generator().manual_seed(0), dropout=0.0)
    ref, _ = task.text.encode(captions[:8])
    torch.testing.assert_close(emb0, ref)


def regularised_trainer(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path, setting: str) -> Trainer:
    """A tiny-T5 stage-2 trainer with one `model.` regulariser set."""
    cfg, resolved = ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5), setting)
    return Trainer(AudioLDMTask, cfg, resolved, setting.split("=")[0].removeprefix("model."))


def regularisers_in_steps(trainer: Trainer) -> dict[str, list[float]]:
    """The text regularisers the task's condition() got in one training step, then one validation step."""
    task, seen = trainer.task, {"token_dropout": [], "text_noise": []}
    real = task.condition

    def spy(captions, gen, dropout, token_dropout=0.0, text_noise=0.0):
        seen["token_dropout"].append(token_dropout), seen["text_noise"].append(text_noise)
        return real(captions, gen, dropout, token_dropout, text_noise)

    task.condition = spy
    batch = next(iter(trainer.train_dl))
    task.train_step(batch, 0), task.valid_step(batch, torch.Generator().manual_seed(0))
    return seen


def test_token_dropout_masks_tokens_of_kept_captions_only(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    """model.token_dropout masks that share of a caption's tokens (never all of them); the CFG null rows and the
    states themselves are untouched, and the training step uses it (validation does not)."""
    trainer = regularised_trainer(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path, "model.token_dropout=0.4")
    task = trainer.task
    captions = ["a dog barks", "wind blows"] * 500
    own, own_mask = task.text.encode(captions)
    emb, mask = task.condition(captions, torch.Generator().manual_seed(0), dropout=0.0, token_dropout=0.4)
    torch.testing.assert_close(emb, own)
    assert not (mask & ~own_mask).any() and mask.any(1).all()
    assert 0.35 < 1 - mask.sum() / own_mask.sum() < 0.45
    null_emb, null_mask = task.text.null(4)
    emb, mask = task.condition(captions[:4], torch.Generator().manual_seed(0), dropout=0.999, token_dropout=0.9)
    assert torch.equal(mask[:, : null_mask.shape[1]], null_mask)  # null rows keep their every token
    assert regularisers_in_steps(trainer)["token_dropout"] == [0.4, 0.0]
    with pytest.raises(ValueError, match="model.token_dropout"):
        ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, "model.token_dropout=1.0")


def test_text_noise_perturbs_kept_captions_by_their_rms(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    """model.text_noise adds Gaussian noise of that many times each caption's token-state RMS to its states,
    leaves the mask and the CFG null rows exact, and is used by the training step only."""
    trainer = regularised_trainer(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path, "model.text_noise=0.5")
    task = trainer.task
    captions = ["a dog barks loudly in the distance", "wind"] * 200
    own, own_mask = task.text.encode(captions)
    emb, mask = task.condition(captions, torch.Generator().manual_seed(0), dropout=0.0, text_noise=0.5)
    assert torch.equal(mask, own_mask)
    real = own_mask.bool()
    for row in (0, 1):  # a long and a one-word caption: noise scaled by each one's own RMS
        rms = own[row::2][real[row::2]].pow(2).mean().sqrt()
        added = (emb - own)[row::2][real[row::2]]
        assert 0.45 < float(added.std() / rms) < 0.55 and abs(float(added.mean() / rms)) < 0.02
    null_emb, _ = task.text.null(4)
    emb, _ = task.condition(captions[:4], torch.Generator().manual_seed(0), dropout=0.999, text_noise=0.5)
    torch.testing.assert_close(emb[:, : null_emb.shape[1]], null_emb)  # the null prompt stays exact
    assert regularisers_in_steps(trainer)["text_noise"] == [0.5, 0.0]
    with pytest.raises(ValueError, match="model.text_noise"):
        ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, "model.text_noise=-0.1")


def test_frame_offset_noise_is_shared_by_a_frames_bins_in_training_only(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    """model.frame_offset_noise adds to the training noise one draw per latent channel and frame, the same over its
    frequency bins; with it off, and in validation, the noise is the plain draw."""
    cfg, resolved = ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5), "model.frame_offset_noise=0.5")
    trainer = Trainer(AudioLDMTask, cfg, resolved, "frame_offset")
    task, batch = trainer.task, next(iter(trainer.train_dl))
    drawn, modes = [], []
    real_add, real_loss = task.noise_scheduler.add_noise, task.diffusion_loss
    task.noise_scheduler.add_noise = lambda z0, noise, t: drawn.append(noise) or real_add(z0, noise, t)
    task.diffusion_loss = lambda batch, gen, training: modes.append(training) or real_loss(batch, gen, training)
    task.diffusion_loss(batch, torch.Generator().manual_seed(0), training=False)
    task.diffusion_loss(batch, torch.Generator().manual_seed(0), training=True)
    task.train_step(batch, 0), task.valid_step(batch, torch.Generator().manual_seed(0))
    plain, offset, _, validated = drawn
    extra = offset - plain
    assert extra.shape == plain.shape and plain.shape[-1] > 1
    torch.testing.assert_close(extra, extra[..., :1].expand_as(extra))  # one value per channel and frame
    assert 0.3 < extra[..., 0].std() < 0.7  # the configured scale, 0.5
    assert modes[2:] == [True, False] and torch.equal(validated, plain)  # training uses it, validation does not
    with pytest.raises(ValueError, match="model.frame_offset_noise"):
        ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, "model.frame_offset_noise=-0.1")


@pytest.mark.parametrize("prediction, ratio", [("epsilon", 0.6), ("v_prediction", 0.9)])
def test_training_lowers_loss_on_a_fixed_batch(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path, prediction, ratio):
    # v targets at high noise levels are x0 itself, which a few steps cannot memorise: a smaller drop is expected
    sets = [*t5_sets(tiny_t5), "train.learning_rate=3e-3", f"model.noise_scheduler.prediction_type={prediction}"]
    trainer = Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *sets), f"overfit_{prediction}")
    batch = next(iter(trainer.train_dl))
    losses = [trainer.task.train_step(batch, 0)["loss"].item() for _ in range(30)]  # same noise and t each time
    assert losses[-1] < ratio * losses[0]


def test_latent_cache_equals_on_the_fly(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    cfg, resolved = ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5))
    fly = Trainer(AudioLDMTask, cfg, resolved, "fly")
    cfg_c, resolved_c = ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5), "model.cache_latents=true")
    cached = Trainer(AudioLDMTask, cfg_c, resolved_c, "cached")
    caches = list((tiny_synthcaps / "SynthCaps").glob("latent_*"))
    assert len(caches) == 1 and len(list(caches[0].glob("*.npy"))) > 0
    b_fly, b_cached = next(iter(fly.train_dl)), next(iter(cached.train_dl))
    assert b_fly["uid"] == b_cached["uid"] and "posterior" in b_cached
    z1 = fly.task.latents(b_fly, torch.Generator().manual_seed(5))
    z2 = cached.task.latents(b_cached, torch.Generator().manual_seed(5))
    torch.testing.assert_close(z1, z2, atol=1e-5, rtol=1e-4)


def test_latent_cache_encodes_a_re_prepared_clip_again(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    """The cache folder is keyed by the VAE; a latent older than its mel (the clip was re-prepared) is redone."""
    import numpy as np

    data = tmp_path / "data"
    shutil.copytree(tiny_synthcaps, data, ignore=shutil.ignore_patterns("latent_*"))
    cfg, resolved = ldm_cfg(data, tiny_vae, tmp_path, *t5_sets(tiny_t5), "model.cache_latents=true")
    first = Trainer(AudioLDMTask, cfg, resolved, "cached")
    ds = first.train_dl.dataset
    mel_path, latent_path, other = ds.mel_paths[0], ds.latent_path(0, ds.rows[0]["Uid"]), ds.latent_path(-1, ds.rows[-1]["Uid"])
    kept = other.stat().st_mtime_ns
    np.save(mel_path, np.load(mel_path) * 0.5)  # as a re-preparation rewrites the clip
    Trainer(AudioLDMTask, cfg, resolved, "cached_again")
    assert latent_path.stat().st_mtime_ns >= mel_path.stat().st_mtime_ns and other.stat().st_mtime_ns == kept
    mel = torch.from_numpy(np.load(mel_path))[None]
    torch.testing.assert_close(torch.from_numpy(np.load(latent_path)), first.task.posterior(mel)[0].cpu(), atol=1e-5, rtol=1e-4)


def test_resume_continues_exactly(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    def run(name, steps, resume=False):
        cfg, resolved = ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5), f"train.max_steps={steps}", "train.valid_every=100", "model.valid_samples=0")
        trainer = Trainer(AudioLDMTask, cfg, resolved, name, resume=resume)
        trainer.run()
        rows = [json.loads(line) for line in (trainer.exp_dir / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["split"] == "train"]

    full = run("full", 4)
    run("split", 2)
    assert run("split", 4, resume=True) == pytest.approx(full, rel=1e-6)


def test_resume_puts_the_ema_weights_on_the_training_device(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path, monkeypatch):
    """The checkpoint is read onto the CPU; on a GPU the EMA's shadow weights stayed there and the first update
    after resume failed (seen on an H100). Here the accelerator's device is made `meta` to see where they go."""
    cfg, resolved = ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5), "train.max_steps=2", "train.valid_every=100",
                            "model.valid_samples=0", "train.ema_decay=0.99")
    Trainer(AudioLDMTask, cfg, resolved, "ema").run()
    trainer = Trainer(AudioLDMTask, cfg, resolved, "ema", resume=True)
    monkeypatch.setattr(type(trainer.accelerator), "device", property(lambda self: torch.device("meta")))
    trainer._resume()
    assert {p.device.type for p in trainer.ema.shadow_params} == {"meta"}


def test_missing_vae_context_mismatch_and_empty_data(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    with pytest.raises(UserError, match=r"nowhere is not an export of stage .autoencoderkl. .*run_train.sh"):
        Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tmp_path / "nowhere", tmp_path, *t5_sets(tiny_t5)), "x")
    with pytest.raises(UserError, match=r"unet.cross_attention_dim=48 but text encoder .* outputs 32-dim"):
        Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, f"text_encoder.name_or_path={tiny_t5}", "unet.cross_attention_dim=48"), "x")
    empty = tmp_path / "empty" / "SynthCaps"
    empty.mkdir(parents=True)
    for split in ("train", "valid"):
        (empty / f"{split}.json").write_text("[]")
    with pytest.raises(UserError, match=r"split 'train' of \['SynthCaps'\] .* is empty; run `sh egs/tta/prepare/run_prepare.sh --dataset SynthCaps` first"):
        Trainer(AudioLDMTask, *ldm_cfg(tmp_path / "empty", tiny_vae, tmp_path, *t5_sets(tiny_t5)), "x")
    small = shutil.copytree(tiny_synthcaps / "SynthCaps", tmp_path / "small" / "SynthCaps")
    (small / "valid.json").write_text("[]")  # a dataset too small for its valid share (the hint said "--dataset <name>")
    with pytest.raises(UserError, match=r"split 'valid' .* is empty: too few clips .* --set preprocess.valid_ratio=\.\.\. \(larger\)"):
        Trainer(AudioLDMTask, *ldm_cfg(tmp_path / "small", tiny_vae, tmp_path, *t5_sets(tiny_t5)), "x")
    with pytest.raises(UserError, match=r"other audio settings \(audio\.target_frames: 128 there, 256 here\)"):
        Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *t5_sets(tiny_t5), "audio.target_frames=256"), "x")


def test_cli_exports_a_self_contained_model(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    out = tmp_path / "ckpts"
    args = ["--config", DEBUG, "--exp_name", "ldm", "--cache_latents", f"--set=data.processed_dir={tiny_synthcaps}",
            f"--set=output_dir={out}", f"--set=model.autoencoder_path={tiny_vae}", *[f"--set={s}" for s in t5_sets(tiny_t5)]]
    assert train_main(args) == 0
    export = out / "ldm" / "export"
    meta = json.loads((export / "tta_artifact.json").read_text())
    assert meta["stage"] == "audioldm" and meta["text_encoder"]["name_or_path"] == "text_encoder"
    for sub in ("unet", "vae", "text_encoder"):
        assert (export / sub / "config.json").exists()
    assert list((out / "ldm" / "logs").iterdir())


def test_gradient_checkpointing_gives_the_same_gradients():
    from dataclasses import replace

    from models.tta.audioldm.model import UNetConfig, build_unet

    cfg = UNetConfig([16, 32], 1, [False, True], 8, 32, 4, False)
    torch.manual_seed(0)
    plain = build_unet(cfg, 4)
    ckpt = build_unet(replace(cfg, gradient_checkpointing=True), 4)
    ckpt.load_state_dict(plain.state_dict())
    assert ckpt.is_gradient_checkpointing and not plain.is_gradient_checkpointing
    z, t, emb = torch.randn(2, 4, 8, 16), torch.tensor([10, 900]), torch.randn(2, 5, 32)
    for m in (plain, ckpt):
        m.train()
        m(z, t, encoder_hidden_states=emb).sample.pow(2).mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_attention_uses_scaled_dot_product_attention(tiny_t5):
    from diffusers.models.attention_processor import AttnProcessor2_0

    from models.tta.audioldm.model import UNetConfig, build_unet

    unet = build_unet(UNetConfig([16, 32], 1, [False, True], 8, 32, 4, False), 4)
    assert {type(p) for p in unet.attn_processors.values()} == {AttnProcessor2_0}


def test_pooled_text_is_the_masked_mean_and_conditions_the_unet():
    from models.tta.audioldm.model import UNetConfig, build_unet, text_condition

    torch.manual_seed(0)
    unet = build_unet(UNetConfig([16, 32], 1, [False, True], 8, 32, 4, False, pooled_text=True), 4).eval()
    emb = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    kwargs = text_condition(unet, emb, mask)
    torch.testing.assert_close(kwargs["class_labels"][0], emb[0, :3].mean(0))
    torch.testing.assert_close(kwargs["class_labels"][1], emb[1].mean(0))
    # padding does not leak into the pooled vector; the pooled vector does change the output
    emb2 = emb.clone()
    emb2[0, 3:] = 100.0
    assert torch.equal(text_condition(unet, emb2, mask)["class_labels"], kwargs["class_labels"])
    z, t = torch.randn(2, 4, 8, 16), torch.tensor([10, 900])
    with torch.no_grad():
        base = unet(z, t, **kwargs).sample
        shifted = unet(z, t, **{**kwargs, "class_labels": kwargs["class_labels"] + 1}).sample
    assert not torch.allclose(base, shifted)
    assert "class_labels" not in text_condition(build_unet(UNetConfig([16, 32], 1, [False, True], 8, 32, 4, False), 4), emb, mask)


def test_channels_last_gives_the_same_gradients_and_exports(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    from dataclasses import replace

    from models.tta.audioldm.model import UNetConfig, build_unet

    cfg = UNetConfig([16, 32], 1, [False, True], 8, 32, 4, False)
    torch.manual_seed(0)
    plain = build_unet(cfg, 4)
    nhwc = build_unet(replace(cfg, channels_last=True), 4)
    nhwc.load_state_dict(plain.state_dict())
    assert nhwc.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    z, t, emb = torch.randn(2, 4, 8, 16), torch.tensor([10, 900]), torch.randn(2, 5, 32)
    plain(z, t, encoder_hidden_states=emb).sample.pow(2).mean().backward()
    nhwc(z.contiguous(memory_format=torch.channels_last), t, encoder_hidden_states=emb).sample.pow(2).mean().backward()
    for (name, a), b in zip(plain.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)
    # a channels_last run checkpoints, exports (safetensors needs contiguous weights) and loads back
    from diffusers import UNet2DConditionModel

    sets = [*t5_sets(tiny_t5), "unet.channels_last=true", "train.max_steps=2"]
    trainer = Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *sets), "nhwc")
    export = trainer.run()
    assert UNet2DConditionModel.from_pretrained(str(export / "unet")).conv_in.weight.shape == nhwc.conv_in.weight.shape


def test_training_with_a_global_text_vector(tiny_synthcaps, tiny_vae, tmp_path):
    """AudioLDM's conditioning mode in the same task: a projected (CLAP) text vector, no cross-attention to text."""
    from conftest import AUDIOCAPS_TABLES
    from models.tta.audioldm.pipeline import TTAPipeline
    from published_layouts import save_tiny_clap_text

    captions = [line.split(",", 2)[-1] for line in (AUDIOCAPS_TABLES / "train.csv").read_text().splitlines()[1:400]]
    clap = save_tiny_clap_text(tmp_path / "clap", captions)
    sets = [f"text_encoder.name_or_path={clap}", "text_encoder.output=projected", "train.max_steps=2", "model.valid_samples=0"]
    with pytest.raises(UserError, match="pooled_text needs token states"):  # the demo config's pooled_text: true
        Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *sets), "x")
    sets.append("unet.pooled_text=false")
    trainer = Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *sets), "clap")
    unet = trainer.task.unwrap("unet")
    assert unet.config.class_embed_type == "simple_projection" and unet.config.projection_class_embeddings_input_dim == 16
    before = {k: v.clone() for k, v in unet.class_embedding.state_dict().items()}
    export = trainer.run()
    assert any(not torch.equal(before[k], v) for k, v in trainer.task.unwrap("unet").class_embedding.state_dict().items())
    pipe = TTAPipeline.from_experiment(export)
    a, b = (pipe([p], seed=0, num_steps=2).mel for p in ("A dog barks", "Rain on a roof"))
    assert torch.isfinite(a).all() and not torch.allclose(a, b)


def test_accumulated_micro_batches_draw_different_noise(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    """With train.grad_accum_steps=2 the two micro-batches of a step get their own noise, timesteps and CFG
    dropout; micro-batch 0 keeps the seed a run without accumulation uses."""
    sets = [*t5_sets(tiny_t5), "train.max_steps=1", "train.grad_accum_steps=2", "train.valid_every=100", "model.valid_samples=0"]
    trainer = Trainer(AudioLDMTask, *ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *sets), "accum")
    seeds = []
    real = trainer.task.diffusion_loss
    trainer.task.diffusion_loss = lambda batch, gen, *args, **kw: seeds.append(gen.initial_seed()) or real(batch, gen, *args, **kw)
    trainer.run()
    assert seeds[0] != seeds[1]  # the two micro-batches of step 0 (validation's fixed generator follows)
    trainer.task.micro_batch = 0
    assert seeds[0] == trainer.task.step_generator(0).initial_seed()


@pytest.mark.parametrize("sets, message", [
    (["model.min_snr_gamma=5", "model.noise_scheduler.rescale_betas_zero_snr=true", "model.noise_scheduler.prediction_type=epsilon"],
     "0/0"),
    (["model.sampler.guidance=2"], r"model.sampler: unknown key\(s\) \['guidance'\]"),
    (["model.noise_scheduler.beta_schedul=linear"], r"model.noise_scheduler: unknown key\(s\) \['beta_schedul'\]"),
])
def test_inconsistent_diffusion_settings_are_config_errors(tiny_synthcaps, tiny_vae, tmp_path, sets, message):
    from utils.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        ldm_cfg(tiny_synthcaps, tiny_vae, tmp_path, *sets)


def test_a_broken_task_import_is_not_reported_as_an_unknown_model_type(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "models.vocoder.task", None)  # importing it now raises ImportError
    with pytest.raises(ImportError):
        train_main(["--config", "egs/tta/hifigan/exp_config_debug.json", "--exp_name", "x"])


def test_two_processes_keep_a_trainable_text_encoder_identical(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path):
    """Each rank sees other captions: only if the text encoder is called through its data-parallel wrapper
    are its gradients averaged, and the ranks end with the same weights."""
    import subprocess
    import sys

    from conftest import REPO

    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
         "tests/ddp_ldm_worker.py", str(tiny_synthcaps), str(tiny_vae), str(tiny_t5), str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["step"] == 2 for r in ranks)  # a checkpoint at step 2 (tied T5 weights)
    assert ranks[0]["unet"] == ranks[1]["unet"] and ranks[0]["text"] == ranks[1]["text"]


def test_full_config_builds_what_its_comments_say():
    """config/audioldm.json: 8 heads at every level (Amphion's), context 768, DPM-Solver++ 25 by default."""
    from diffusers.models.attention_processor import Attention

    from models.tta.audioldm.model import build_unet

    cfg, _ = load_config("egs/tta/audioldm/exp_config.json", AudioLDMTask.Config, [])
    with torch.device("meta"):  # shapes only: no memory for 260 M parameters
        unet = build_unet(cfg.unet, 8)
    heads = {(m.heads, m.to_q.in_features // m.heads) for m in unet.modules() if isinstance(m, Attention)}
    assert {h for h, _ in heads} == {8} and {d for _, d in heads} == {32, 64, 128}
    assert (cfg.model.sampler["name"], cfg.model.sampler["num_steps"]) == ("dpm++", 25)


def test_demo_config_builds_what_its_comments_say():
    """exp_config_synthcaps.json: cross-attention at the two lowest levels (32x8 and 16x4 latent cells), 4 heads of
    16 and 32 channels there (not 32 heads of 2-4 channels, which made attending at 32x8 cost 1 s a step)."""
    from diffusers.models.attention_processor import Attention

    from models.tta.audioldm.model import build_unet

    cfg, _ = load_config("egs/tta/audioldm/exp_config_synthcaps.json", AudioLDMTask.Config, [])
    unet = build_unet(cfg.unet, 8)
    heads = {(m.heads, m.to_q.in_features // m.heads) for m in unet.modules() if isinstance(m, Attention)}
    assert heads == {(4, 16), (4, 32)}
    assert [type(b).__name__ for b in unet.down_blocks] == ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]


def test_head_count_per_level():
    """`unet.attention_head_dim` as a list sets each level's heads (the mid block takes the last); a list of the
    wrong length is refused, naming the key."""
    from diffusers.models.attention_processor import Attention

    from models.tta.audioldm.model import build_unet
    from utils.config import ConfigError

    sets = ["unet.attention_levels=[true,true,true]", "unet.attention_head_dim=[1,2,4]"]
    cfg, _ = load_config("egs/tta/audioldm/exp_config_synthcaps.json", AudioLDMTask.Config, sets)
    unet = build_unet(cfg.unet, 8)
    per_level = [{m.heads for m in block.modules() if isinstance(m, Attention)} for block in unet.down_blocks]
    assert per_level == [{1}, {2}, {4}]
    assert {m.heads for m in unet.mid_block.modules() if isinstance(m, Attention)} == {4}
    assert [{m.heads for m in b.modules() if isinstance(m, Attention)} for b in unet.up_blocks] == [{4}, {2}, {1}]
    with pytest.raises(ConfigError, match="attention_head_dim"):
        load_config("egs/tta/audioldm/exp_config_synthcaps.json", AudioLDMTask.Config, ["unet.attention_head_dim=[1,4]"])


