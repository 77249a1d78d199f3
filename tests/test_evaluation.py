"""Evaluation: the attribute analyser on real SynthCaps audio, distribution metrics, the evaluate and report
CLIs, and the pluggable real embedders (PANNs, VGGish, CLAP) loaded from randomly initialised checkpoints."""

import json
import shutil

import numpy as np
import pytest
import torch

from bins.tta.evaluate import main as evaluate_main
from bins.tta.report import main as report_main
from evaluation.attributes import AttributeAnalyser
from evaluation.distribution import frechet_distance, inception_score, kl_divergence, kl_softmax
from evaluation.embedders import load_embedding
from evaluation.embedders.panns import Cnn14, PannsConfig, PannsEmbedding, load_cnn14
from evaluation.embedders.vggish import VGGish, VGGishEmbedding, mel_matrix
from preprocessors.synthcaps import all_combinations, synthesize
from utils.errors import UserError
from utils.mel import MelConfig
from utils.plot import save_mel_png

DEMO_AUDIO = MelConfig(segment_seconds=2.56, target_frames=256)


def test_analyser_scores_real_synthcaps_audio_near_perfectly():
    analyser = AttributeAnalyser(DEMO_AUDIO)
    combos = all_combinations()
    hits = {"sound_type": 0, "pitch": 0, "pattern": 0}
    for i, attrs in enumerate(combos):
        got = analyser(synthesize(attrs, 2.56, 16000, seed=1000 + i))
        for a in hits:
            hits[a] += got[a] == getattr(attrs, a)
    accuracy = {a: h / len(combos) for a, h in hits.items()}
    assert min(accuracy.values()) >= 0.95, accuracy


def test_frechet_distance_kl_and_inception_score():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    assert abs(frechet_distance(a, a)) < 1e-6
    shifted = frechet_distance(a, a + np.array([3.0, 0, 0, 0]))
    assert shifted == pytest.approx(9.0, rel=1e-3)  # equal covariances: only the squared mean shift remains
    p = np.array([0.2, 0.3, 0.5])
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(p, p[::-1]) > 0.1
    logits = 50 * np.eye(5)
    assert kl_softmax(logits, logits) == pytest.approx(0.0, abs=1e-5) and kl_softmax(logits, logits[::-1]) > 10
    assert inception_score(logits, splits=1) == pytest.approx(5.0, rel=1e-6)  # confident and diverse: IS = #classes
    assert inception_score(np.zeros((5, 5)), splits=1) == pytest.approx(1.0, rel=1e-6)  # uninformative: IS = 1


@pytest.fixture(scope="module")
def real_as_generated(tiny_synthcaps, tmp_path_factory):
    """An inference-style folder holding the real test clips under their captions (an ideal generator)."""
    ref = tiny_synthcaps / "SynthCaps" / "test.json"
    out = tmp_path_factory.mktemp("generated")
    rows = json.loads(ref.read_text())
    with open(out / "prompts.jsonl", "w") as f:
        for i, r in enumerate(rows):
            shutil.copy(tiny_synthcaps / "SynthCaps" / "wav" / f"{r['Uid']}.wav", out / f"{i:04d}.wav")
            save_mel_png(out / f"{i:04d}.png", np.load(tiny_synthcaps / "SynthCaps" / "mel" / f"{r['Uid']}.npy"), r["Caption"])
            f.write(json.dumps({"prompt": r["Caption"], "wav": f"{i:04d}.wav", "png": f"{i:04d}.png"}) + "\n")
    return out, ref


def test_evaluate_cli_on_an_ideal_generator(real_as_generated, tmp_path, capsys):
    generated, ref = real_as_generated
    assert evaluate_main(["--generated", str(generated), "--reference", str(ref)]) == 0
    result = json.loads((generated / "eval.json").read_text())
    assert result["generated"] == result["scored_clips"] == len(json.loads(ref.read_text()))
    for attr, v in result["text_adherence"].items():
        assert v["accuracy"] == v["reference_accuracy"], attr  # the same audio scores the same
    assert result["kl_spectrum"] == pytest.approx(0.0, abs=1e-9)
    printed = capsys.readouterr().out
    assert "pitch accuracy" in printed and "note:" not in printed
    renamed = shutil.copytree(generated, tmp_path / "renamed")
    rows = (renamed / "prompts.jsonl").read_text().splitlines()
    (renamed / "prompts.jsonl").write_text("\n".join([*rows[1:], json.dumps({**json.loads(rows[0]), "prompt": "A tuba"})]))
    assert evaluate_main(["--generated", str(renamed), "--reference", str(ref)]) == 0  # was silent about it
    assert f"note: 1 of {len(rows)} prompts are not captions of --reference" in capsys.readouterr().out


def test_evaluate_errors_are_one_line(tmp_path, real_as_generated):
    generated, ref = real_as_generated
    with pytest.raises(UserError, match="prompts.jsonl"):
        evaluate_main(["--generated", str(tmp_path), "--reference", str(ref)])
    with pytest.raises(UserError, match="not found"):
        evaluate_main(["--generated", str(generated), "--reference", str(tmp_path / "nope.json")])
    with pytest.raises(UserError, match="--embedding_path"):
        evaluate_main(["--generated", str(generated), "--reference", str(ref), "--embedding", "panns"])
    with pytest.raises(UserError, match="unknown --embedding"):
        load_embedding("fad9000", None, DEMO_AUDIO)
    unstamped = tmp_path / "copy" / "SynthCaps"  # a split whose audio settings are unknown is not guessed
    shutil.copytree(ref.parent, unstamped, ignore=shutil.ignore_patterns("mel"))
    with pytest.raises(UserError, match="mel_config.json not found"):
        evaluate_main(["--generated", str(generated), "--reference", str(unstamped / ref.name)])


def test_empty_or_broken_generated_and_reference_files_are_one_line(tmp_path, real_as_generated):
    """Each of these was a traceback (numpy's concatenate of nothing, json's decode error without the file)."""
    generated, ref = real_as_generated
    rows = (generated / "prompts.jsonl").read_text()
    copy = shutil.copytree(generated, tmp_path / "gen")
    (copy / "prompts.jsonl").write_text("")
    with pytest.raises(UserError, match="prompts.jsonl lists no clips"):
        evaluate_main(["--generated", str(copy), "--reference", str(ref)])
    (copy / "prompts.jsonl").write_text(rows + '{"prompt": "cut sh\n')
    with pytest.raises(UserError, match=rf"prompts.jsonl:{len(rows.splitlines()) + 1} is not valid JSON"):
        evaluate_main(["--generated", str(copy), "--reference", str(ref)])
    split = shutil.copytree(ref.parent, tmp_path / "split" / ref.parent.name)
    (split / ref.name).write_text("[]")
    with pytest.raises(UserError, match="holds no rows"):
        evaluate_main(["--generated", str(generated), "--reference", str(split / ref.name)])
    (split / ref.name).write_text('[{"Uid": ')
    with pytest.raises(UserError, match=rf"{ref.name} is not valid JSON"):
        evaluate_main(["--generated", str(generated), "--reference", str(split / ref.name)])
    (copy / "prompts.jsonl").write_text(rows)
    next(copy.glob("*.wav")).unlink()
    with pytest.raises(UserError, match=r"\.wav: not found"):  # was "unreadable audio (FileNotFoundError: ...)"
        evaluate_main(["--generated", str(copy), "--reference", str(ref)])


def test_report_has_audio_mels_and_scores(real_as_generated, tiny_vae, tmp_path):
    generated, ref = real_as_generated
    evaluate_main(["--generated", str(generated), "--reference", str(ref)])
    assert report_main(["--generated", str(generated), "--reference", str(ref), "--vae", str(tiny_vae),
                        "--experiments", str(tiny_vae), "--output_dir", str(tmp_path), "--note", "test run"]) == 0
    html = (tmp_path / "report.html").read_text()
    assert html.count("<audio") >= 2 and "test run" in html and "pitch" in html
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())


def test_report_leaves_out_a_training_curve_cut_mid_line(real_as_generated, tiny_vae, tmp_path):
    """A training killed while appending to metrics.jsonl: the report is written without that curve (it raised
    json's decode error before)."""
    generated, ref = real_as_generated
    evaluate_main(["--generated", str(generated), "--reference", str(ref)])
    killed = shutil.copytree(tiny_vae, tmp_path / "killed", ignore=shutil.ignore_patterns("checkpoints", "export"))
    with (killed / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9, "spl')
    out = tmp_path / "report"
    assert report_main(["--generated", str(generated), "--reference", str(ref), "--experiments", str(tiny_vae), str(killed),
                        "--output_dir", str(out)]) == 0
    assert (out / f"curves_{tiny_vae.name}.png").is_file() and not (out / "curves_killed.png").exists()


# ---- pluggable real embedders, loaded through the same code a downloaded checkpoint takes ----------

def test_panns_cnn14_checkpoint_loads_and_embeds(real_as_generated, tmp_path):
    torch.manual_seed(0)
    model = Cnn14(PannsConfig()).eval()
    state = {**model.state_dict(), "spectrogram_extractor.stft.conv_real.weight": torch.zeros(257, 1, 512)}
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": state, "iteration": 0}, path)
    loaded = load_cnn14(path)
    wav = torch.randn(1, 16000)
    with torch.no_grad():
        for a, b in zip(model(wav), loaded(wav)):
            torch.testing.assert_close(a, b)
    emb = PannsEmbedding(path)
    e, logits = emb.embed_and_classify(wav[0].numpy())
    assert e.shape == (2048,) and logits.shape == (527,) and np.isfinite(logits).all()
    generated, ref = real_as_generated
    assert evaluate_main(["--generated", str(generated), "--reference", str(ref), "--embedding", "panns",
                          "--embedding_path", str(path), "--output", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    # identical pairs: 0 up to audioldm-eval's eps inside the log (-5e-4 over 527 classes)
    assert result["embedding"] == "panns_cnn14" and abs(result["kl_softmax"]) < 1e-3 and result["paired_clips"] == result["generated"]
    assert result["inception_score"] >= 1.0


def test_panns_rejects_a_foreign_checkpoint(tmp_path):
    torch.save({"model": {"encoder.weight": torch.zeros(2, 2)}}, tmp_path / "x.pth")
    with pytest.raises(UserError, match="not a Cnn14 checkpoint"):
        load_cnn14(tmp_path / "x.pth")
    with pytest.raises(UserError, match="not found"):
        load_cnn14(tmp_path / "missing.pth")


def test_vggish_state_dict_loads_and_embeds(tmp_path):
    torch.manual_seed(0)
    torch.save(VGGish().state_dict(), tmp_path / "vggish-10086976.pth")
    emb = VGGishEmbedding(tmp_path / "vggish-10086976.pth")
    wav = np.random.default_rng(0).normal(size=32000).astype(np.float32)  # 2 s -> two 0.96 s examples
    assert emb.model.examples(torch.from_numpy(wav)).shape == (2, 1, 96, 64)
    e = emb(wav)
    assert e.shape == (2, 128) and (e < 0).any()  # one row per example, taken before the final ReLU (as FAD)
    m = mel_matrix()
    assert m.shape == (257, 64) and (m[0] == 0).all() and (m.sum(axis=0) > 0).all()


def test_clap_folder_loads_and_scores(tmp_path):
    from evaluation.embedders.clap import ClapEmbedding
    from published_layouts import save_tiny_clap

    save_tiny_clap(tmp_path)
    clap = ClapEmbedding(tmp_path)
    wavs = [np.random.default_rng(i).normal(size=48000).astype(np.float32) * 0.1 for i in range(2)]
    scores = clap.score(wavs, ["a dog barks", "wind blows"])
    assert scores.shape == (2,) and (np.abs(scores) <= 1 + 1e-6).all()
    assert np.linalg.norm(clap(wavs[0])) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(UserError, match="could not be loaded"):
        ClapEmbedding(tmp_path / "missing")
