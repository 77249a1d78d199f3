"""Fine-tuning a stage-2 export (ours and a converted published layout), fully or with LoRA adapters."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from bins.tta.inference import main as infer_main
from bins.tta.preprocess import main as prepare_main
from conftest import REPO
from models.base.trainer import Trainer
from models.tta.audioldm.lora import apply_adapters, merge_adapters
from models.tta.audioldm.pipeline import TTAPipeline
from models.tta.audioldm.task import AudioLDMTask
from models.tta.pretrained.convert import convert
from utils.config import load_config
from utils.errors import UserError

DEBUG = "egs/tta/audioldm/exp_config_debug.json"
LORA = 'train.lora={rank: 4, alpha: 4, target_modules: ["to_q", "to_k", "to_v", "to_out.0"]}'


def ft_cfg(data, export, out, *extra):
    sets = [f"data.processed_dir={data}", f"output_dir={out}", f"model.init_from={export}", "model.valid_samples=0",
            "train.valid_every=100", "model.cache_latents=false", *extra]
    return load_config(DEBUG, AudioLDMTask.Config, sets)


def unet_weights(export) -> dict[str, torch.Tensor]:
    return load_file(str(next((export / "export" / "unet").glob("*.safetensors"))))


def overfit(trainer: Trainer, steps: int = 30) -> list[float]:
    batch = next(iter(trainer.train_dl))
    return [trainer.task.train_step(batch, 0)["loss"].item() for _ in range(steps)]  # same noise and t each time


def test_fine_tuning_starts_from_the_export_and_learns(tiny_synthcaps, tiny_ldm, tmp_path):
    trainer = Trainer(AudioLDMTask, *ft_cfg(tiny_synthcaps, tiny_ldm, tmp_path, "train.learning_rate=3e-3"), "ft")
    unet = trainer.task.unwrap("unet")
    for k, v in unet_weights(tiny_ldm).items():
        torch.testing.assert_close(unet.state_dict()[k], v)  # step 0 is the export
    assert trainer.task.schedule == json.loads((tiny_ldm / "export" / "tta_artifact.json").read_text())["noise_scheduler"]
    losses = overfit(trainer, 15)
    assert losses[-1] < 0.97 * losses[0]  # v-prediction (the demo's): x0 targets at high noise fall slowly
    assert any(not torch.equal(unet.state_dict()[k], v) for k, v in unet_weights(tiny_ldm).items())


def test_fine_tuning_a_converted_published_model(tmp_path, captions_csv_rows):
    """A tiny AudioLDM (diffusers layout, CLAP text vector) converted, then fine-tuned on SynthCaps clips
    prepared with its audio contract (AudioLDM's 10.24 s)."""
    from published_layouts import save_tiny_audioldm

    save_tiny_audioldm(tmp_path / "audioldm", captions_csv_rows)
    export = convert("audioldm", tmp_path / "audioldm", tmp_path / "converted")
    data = tmp_path / "data"
    assert prepare_main(["--dataset", "SynthCaps", "--processed_dir", str(data), "--set=preprocess.synthcaps_clips=5",
                         "--set=preprocess.num_workers=1", "--set=audio.segment_seconds=10.24", "--set=audio.target_frames=1024"]) == 0
    sets = ["audio.segment_seconds=10.24", "audio.target_frames=1024", "train.batch_size=2", "train.learning_rate=3e-3"]
    trainer = Trainer(AudioLDMTask, *ft_cfg(data, export, tmp_path / "ckpts", *sets), "ft_published")
    assert trainer.task.unwrap("unet").config.class_embed_type == "simple_projection"
    losses = overfit(trainer, 4)
    assert losses[-1] < 0.95 * losses[0]


@pytest.fixture(scope="module")
def captions_csv_rows():
    from conftest import AUDIOCAPS_TABLES

    return [line.split(",", 3)[-1] for line in (AUDIOCAPS_TABLES / "train.csv").read_text().splitlines()[1:600]]


@pytest.fixture(scope="module")
def lora_run(tiny_synthcaps, tiny_ldm, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    before = {p.name: p.read_bytes() for p in (tiny_ldm / "export" / "unet").iterdir()}
    trainer = Trainer(AudioLDMTask, *ft_cfg(tiny_synthcaps, tiny_ldm, out, LORA, "train.learning_rate=5e-2", "train.max_steps=3"), "lora")
    trainer.run()
    assert before == {p.name: p.read_bytes() for p in (tiny_ldm / "export" / "unet").iterdir()}  # export untouched
    return out / "lora", trainer


def test_lora_trains_only_adapters(lora_run, tiny_ldm):
    exp, trainer = lora_run
    unet = trainer.task.unwrap("unet")
    trained = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    base = unet_weights(tiny_ldm)
    for name, value in unet.state_dict().items():  # every base weight bit-identical after training
        if "lora_" not in name:
            assert torch.equal(value, base[name.replace(".base_layer", "")]), name
    adapter = load_file(str(exp / "export" / "adapter.safetensors"))
    assert adapter and all("lora_" in k for k in adapter) and any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    meta = json.loads((exp / "export" / "tta_artifact.json").read_text())
    assert meta["stage"] == "lora" and meta["lora"]["rank"] == 4 and len(meta["base_fingerprint"]) == 12


def test_lora_strength_zero_is_the_base_and_merged_equals_unmerged(lora_run, tiny_ldm, tmp_path):
    exp, _ = lora_run
    args = dict(seed=3, num_steps=2)
    base = TTAPipeline.from_experiment(tiny_ldm)(["A dog barks"], **args).mel
    zero = TTAPipeline.from_experiment(tiny_ldm, loras=[(exp, 0.0)])(["A dog barks"], **args).mel
    torch.testing.assert_close(zero, base)
    full = TTAPipeline.from_experiment(exp)  # a LoRA experiment loads its base with the adapter
    with_lora = full(["A dog barks"], **args).mel
    assert not torch.allclose(with_lora, base)
    merged = TTAPipeline.from_experiment(tiny_ldm)
    apply_adapters(merged.unet, [(exp, 1.0)], tiny_ldm / "export")
    merge_adapters(merged.unet)
    assert not any("lora_" in n for n, _ in merged.unet.named_parameters())
    torch.testing.assert_close(merged(["A dog barks"], **args).mel, with_lora, atol=1e-4, rtol=1e-4)
    # the same through the CLI: --merge_lora writes an export that generates like the adapter
    assert infer_main(["--checkpoint_path", str(tiny_ldm), "--lora", str(exp), "--merge_lora", str(tmp_path / "merged")]) == 0
    torch.testing.assert_close(TTAPipeline.from_experiment(tmp_path / "merged")(["A dog barks"], **args).mel, with_lora, atol=1e-4, rtol=1e-4)
    # two adapters stack; scales are per adapter
    half = TTAPipeline.from_experiment(tiny_ldm, loras=[(exp, 0.5), (exp, 0.5)])(["A dog barks"], **args).mel
    torch.testing.assert_close(half, with_lora, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("adapters", [[LORA], []], ids=["lora", "whole_unet"])
def test_fine_tuning_run_resumes_exactly(tiny_synthcaps, tiny_ldm, tmp_path, adapters):
    def run(name, steps, resume=False):
        cfg = ft_cfg(tiny_synthcaps, tiny_ldm, tmp_path, *adapters, f"train.max_steps={steps}", "train.save_every=2", "train.log_every=1")
        Trainer(AudioLDMTask, *cfg, name, resume=resume).run()
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["split"] == "train"]

    straight = run("straight", 4)
    run("resumed", 2)
    assert run("resumed", 4, resume=True)[-2:] == straight[-2:]


def test_fine_tuning_bad_input(tiny_synthcaps, tiny_vae, tiny_ldm, tmp_path, captions_csv_rows):
    with pytest.raises(UserError, match="other audio settings"):
        Trainer(AudioLDMTask, *ft_cfg(tiny_synthcaps, tiny_ldm, tmp_path, "audio.target_frames=256", "audio.segment_seconds=2.56"), "x")
    with pytest.raises(UserError, match="is an export of stage 'autoencoderkl', expected 'audioldm'"):
        Trainer(AudioLDMTask, *ft_cfg(tiny_synthcaps, tiny_vae, tmp_path), "x")
    sets = [f"data.processed_dir={tiny_synthcaps}", f"output_dir={tmp_path}", LORA]
    with pytest.raises(UserError, match="set --init_from"):
        Trainer(AudioLDMTask, *load_config(DEBUG, AudioLDMTask.Config, sets), "x")
    with pytest.raises(UserError, match="train.lora is not supported for model_type AutoencoderKL"):
        from models.tta.autoencoderkl.task import AutoencoderKLTask

        Trainer(AutoencoderKLTask, *load_config("egs/tta/autoencoderkl/exp_config_debug.json", AutoencoderKLTask.Config,
                                                [f"data.processed_dir={tiny_synthcaps}", f"output_dir={tmp_path}", LORA]), "x")
    # an export whose U-Net config no longer matches its weights
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_ldm / "export", broken)
    cfg = json.loads((broken / "unet" / "config.json").read_text())
    (broken / "unet" / "config.json").write_text(json.dumps({**cfg, "block_out_channels": [24, 48]}))
    with pytest.raises(UserError, match="could not be loaded"):
        Trainer(AudioLDMTask, *ft_cfg(tiny_synthcaps, broken, tmp_path), "x")
    with pytest.raises(UserError, match="--merge_lora needs at least one --lora"):
        infer_main(["--checkpoint_path", str(tiny_ldm), "--merge_lora", str(tmp_path / "m")])


def test_a_lora_for_another_base_is_refused(lora_run, tmp_path, captions_csv_rows):
    from published_layouts import save_tiny_audioldm

    exp, _ = lora_run
    save_tiny_audioldm(tmp_path / "audioldm", captions_csv_rows)
    other = convert("audioldm", tmp_path / "audioldm", tmp_path / "other")
    with pytest.raises(UserError, match="was trained on another base model"):
        TTAPipeline.from_experiment(other, loras=[(exp, 1.0)])


def test_train_cli_takes_init_from(tiny_synthcaps, tiny_ldm, tmp_path):
    from bins.tta.train import main as train_main

    args = ["--config", DEBUG, "--exp_name", "cli_ft", "--init_from", str(tiny_ldm), f"--set=data.processed_dir={tiny_synthcaps}",
            f"--set=output_dir={tmp_path}", "--set=train.max_steps=1", "--set=model.valid_samples=0"]
    assert train_main(args) == 0
    resolved = json.loads((tmp_path / "cli_ft" / "config.json").read_text())
    assert resolved["model"]["init_from"] == str(tiny_ldm)
    assert (REPO / "egs/tta/audioldm/exp_config_lora.json").exists()


def test_new_word_folder_prepares_and_its_prompts_are_held_out(tmp_path):
    """The fine-tuning demo's own-folder dataset goes through the folder front-end like a user's; the prompts it
    is scored on use the new word in phrasings the folder never has, and never the taught sound's own nouns."""
    from evaluation.new_word import NEW_WORD, new_word_prompts, write_folder

    raw = tmp_path / "raw"
    assert write_folder(raw, n_new=6, n_replay=4, seconds=0.5, sample_rate=16000, seed=1) == 10
    assert prepare_main(["--dataset", "folder", "--raw_dir", str(raw), "--name", "Waterfall", "--processed_dir", str(tmp_path / "p"),
                         "--set=audio.segment_seconds=0.5", "--set=audio.target_frames=50", "--set=preprocess.num_workers=1"]) == 0
    rows = [r for split in ("train", "valid", "test") for r in json.loads((tmp_path / "p" / "Waterfall" / f"{split}.json").read_text())]
    captions = {r["Caption"] for r in rows}
    assert len(rows) == 10 and sum(NEW_WORD in r["Caption"] for r in rows) == 6
    prompts = [p for p, _ in new_word_prompts(12, seed=3)]
    assert all(NEW_WORD in p and p not in captions for p in prompts)
    assert not any(noun in p for p in prompts + list(captions) if NEW_WORD in p for noun in ("hiss", "noise", "static"))


def test_new_word_scoring_end_to_end(lora_run, tiny_synthcaps, tiny_ldm, tmp_path):
    """`finetune_demo.py score` scores the base ("before") and the LoRA ("after") on both prompt sets and records its
    sampling seed. (The tiny model makes the same noise for every seed, so the seed's effect is not asserted here;
    the pipeline's per-clip seeding is tested in test_inference.py.)"""
    from bins.tta.finetune_demo import main as score_main
    from evaluation.new_word import adherence
    from preprocessors.synthcaps import Attributes

    exp, _ = lora_run
    test = tiny_synthcaps / "SynthCaps" / "test.json"
    out = tmp_path / "score.json"
    assert score_main(["score", "--base", str(tiny_ldm), "--lora", str(exp), "--test", str(test), "--limit", "2",
                       "--new_prompts", "2", "--seed", "5", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    held_out = [(r["Caption"], Attributes(**r["Attributes"])) for r in json.loads(test.read_text())][:2]
    assert result["seed"] == 5 and set(result["after"]) == {"new_word", "held_out"}
    assert result["before"]["held_out"] == adherence(TTAPipeline.from_experiment(tiny_ldm), held_out, seed=5)
