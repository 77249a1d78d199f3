"""The benchmark's own arithmetic: what its "achieved GFLOP/s" rows divide by step time; the diagnostics'
caption parsing."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from preprocessors.synthcaps import NOUNS, PITCH_WORDS, all_combinations, caption, pattern_phrases
from utils.cli import run_main

sys.path.insert(0, str(REPO / "bench"))  # bench/ is scripts, not a package
from pattern_diagnostics import main as diagnostics_main  # noqa: E402
from pattern_diagnostics import wording  # noqa: E402
from run_all import flop_counter  # noqa: E402


def test_flop_counter_counts_cpu_attention_forward_and_backward():
    b, h, s, d = 2, 4, 64, 16
    q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
    with flop_counter() as counter:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    product = 2 * b * h * s * s * d  # one [s, d] x [d, s] product (or [s, s] x [s, d]) per batch and head
    # forward: Q K^T and P V; backward (flash attention recomputes P): Q K^T, dV, dP, dQ, dK
    assert counter.get_total_flops() == 2 * product + 5 * product


def test_wording_finds_the_words_that_name_each_attribute():
    """Every word found must be one listed for the caption's true attribute, for training and held-out
    phrasings alike (a pattern phrase such as "gets higher" must not be read as the pitch word "high")."""
    rng = np.random.default_rng(0)
    for attrs in all_combinations():
        for heldout in (False, True):
            for _ in range(40):
                text = caption(attrs, rng, heldout=heldout)
                found = wording(text)
                for attr, table in (("sound_type", NOUNS[attrs.sound_type]), ("pitch", PITCH_WORDS[attrs.pitch]),
                                    ("pattern", pattern_phrases(attrs))):
                    assert found[attr] in table[0] + table[1], (text, attr, found[attr])



def test_diagnostics_on_missing_inputs_are_one_line(tiny_ldm, tmp_path, monkeypatch, capsys):
    """A folder without eval.json, an export that is not there, and the demo's data not prepared each raised a
    traceback (FileNotFoundError; a UserError printed with its traceback: the script did not use run_main)."""
    monkeypatch.chdir(tmp_path)  # no data/processed/SynthCaps here
    for args, message in ((["generated", str(tmp_path)], f"error: {tmp_path / 'eval.json'} not found; run bins/tta/evaluate.py"),
                          (["vae", "--vae", str(tmp_path)], f"error: {tmp_path} is not an export of stage 'autoencoderkl'"),
                          (["text", "--ldm", str(tiny_ldm)], "error: data/processed/SynthCaps/train.json not found")):
        with pytest.raises(SystemExit) as exit_:
            run_main(lambda: diagnostics_main(args))
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith(message), lines
        assert torch.is_grad_enabled()  # main() once turned gradients off for the whole process: later tests failed
