"""Shared fixtures: repo on sys.path, offline hub, a tiny prepared SynthCaps corpus."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SHARED = REPO.parent / "shared"
AUDIOCAPS_TABLES = SHARED / "data" / "audiocaps"

import torch  # noqa: E402

torch.set_num_threads(2)

# Small audio contract for fast tests: 1.28 s clips, 128 frames.
TINY_AUDIO = ["audio.segment_seconds=1.28", "audio.target_frames=128"]


@pytest.fixture(scope="session")
def tiny_synthcaps(tmp_path_factory) -> Path:
    """A prepared SynthCaps corpus of 48 short clips; returns the processed_dir."""
    from bins.tta.preprocess import main

    out = tmp_path_factory.mktemp("processed")
    sets = [f"--set={s}" for s in TINY_AUDIO + ["preprocess.synthcaps_clips=48", "preprocess.num_workers=1"]]
    assert main(["--dataset", "SynthCaps", "--processed_dir", str(out), *sets]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_vae(tiny_synthcaps, tmp_path_factory) -> Path:
    """A stage-1 export of the debug VAE trained for 2 steps on tiny_synthcaps; returns the experiment dir."""
    from bins.tta.train import main

    out = tmp_path_factory.mktemp("ckpts")
    sets = [f"--set=data.processed_dir={tiny_synthcaps}", f"--set=output_dir={out}", "--set=train.max_steps=2"]
    assert main(["--config", "egs/tta/autoencoderkl/exp_config_debug.json", "--exp_name", "vae", *sets]) == 0
    return out / "vae"


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    """A small T5 encoder + a Unigram tokenizer trained on real AudioCaps captions, saved as a normal HF folder."""
    import csv

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    with (AUDIOCAPS_TABLES / "train.csv").open(newline="") as f:
        captions = [row["caption"] for _, row in zip(range(3000), csv.DictReader(f))]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(captions, trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    folder = tmp_path_factory.mktemp("tiny_t5")
    T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0).save_pretrained(str(folder))
    torch.manual_seed(0)
    config = T5Config(vocab_size=tok.get_vocab_size(), d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_ldm(tiny_synthcaps, tiny_vae, tiny_t5, tmp_path_factory) -> Path:
    """A stage-2 export of the debug LDM (tiny T5) trained for 2 steps; returns the experiment dir."""
    from bins.tta.train import main

    out = tmp_path_factory.mktemp("ldm_ckpts")
    sets = [f"data.processed_dir={tiny_synthcaps}", f"output_dir={out}", f"model.autoencoder_path={tiny_vae}",
            f"text_encoder.name_or_path={tiny_t5}", "unet.cross_attention_dim=32", "train.max_steps=2", "model.valid_samples=0"]
    assert main(["--config", "egs/tta/audioldm/exp_config_debug.json", "--exp_name", "ldm", *[f"--set={s}" for s in sets]]) == 0
    return out / "ldm"
