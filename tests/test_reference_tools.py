"""Our evaluators against the published tools' own code (requirements-reference.txt, installed with --no-deps):
AudioLDM's audioldm-eval metric functions on the same features, and the PANNs Cnn14 of panns-inference and of
audioldm-eval on the same random weights. Their package __init__ files are not run (audioldm-eval's imports
torchaudio, panns-inference's fetches a labels file from the network): each package is registered by its folder
and its model or metric modules are imported from it unchanged."""

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.distribution import frechet_distance, inception_score, kl_sigmoid, kl_softmax
from evaluation.embedders.panns import Cnn14, PannsConfig, PannsEmbedding


def package_module(package: str, module: str):
    """`package.module` imported from the installed package's folder without running the package's __init__."""
    parts = package.split(".")
    top = sys.modules.get(parts[0])
    root = Path(top.__path__[0] if top else importlib.util.find_spec(parts[0]).submodule_search_locations[0]).parent
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(root.joinpath(*parts[:i]))]
            sys.modules[name] = pkg
    return importlib.import_module(f"{package}.{module}")


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    gen, ref = rng.normal(size=(40, 527)) * 3, rng.normal(size=(40, 527)) * 3
    emb_gen, emb_ref = rng.normal(size=(40, 16)), rng.normal(size=(40, 16)) + 0.5
    return gen, ref, emb_gen, emb_ref


def test_fd_kl_and_is_equal_audioldm_eval(features):
    fid = package_module("audioldm_eval.metrics", "fid")
    kl = package_module("audioldm_eval.metrics", "kl")
    isc = package_module("audioldm_eval.metrics", "isc")
    gen, ref, emb_gen, emb_ref = features
    names = [f"{i}.wav" for i in range(len(gen))]
    theirs_fd = fid.calculate_fid({"2048": torch.from_numpy(emb_gen)}, {"2048": torch.from_numpy(emb_ref)}, "2048")
    assert frechet_distance(emb_gen, emb_ref) == pytest.approx(theirs_fd["frechet_distance"], rel=1e-6)
    theirs_kl, _, _ = kl.calculate_kl({"logits": torch.from_numpy(gen), "file_path_": names},
                                      {"logits": torch.from_numpy(ref), "file_path_": names}, "logits")
    assert kl_softmax(ref, gen) == pytest.approx(theirs_kl["kullback_leibler_divergence_softmax"], rel=1e-6)
    assert kl_sigmoid(ref, gen) == pytest.approx(theirs_kl["kullback_leibler_divergence_sigmoid"], rel=1e-6)
    theirs_is = isc.calculate_isc({"logits": torch.from_numpy(gen)}, "logits", rng_seed=2020, samples_shuffle=True, splits=10)
    assert inception_score(gen) == pytest.approx(theirs_is["inception_score_mean"], rel=1e-9)


def random_cnn14() -> dict[str, torch.Tensor]:
    """Random Cnn14 weights with non-trivial batch-norm statistics (a fresh net's are 0 and 1)."""
    torch.manual_seed(0)
    state = Cnn14(PannsConfig()).state_dict()
    for k, v in state.items():
        if k.endswith("running_mean"):
            state[k] = torch.randn_like(v) * 0.1
        elif k.endswith("running_var"):
            state[k] = torch.rand_like(v) + 0.5
    return state


def test_panns_cnn14_equals_panns_inference_and_audioldm_eval(tmp_path, monkeypatch):
    """Random weights in the published checkpoint layout (saved from panns-inference's model, STFT and mel
    buffers included), read by all three; audioldm-eval's Cnn14 loads ckpt/Cnn14_16k_mAP=0.438.pth itself."""
    settings = dict(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000, classes_num=527)
    panns = package_module("panns_inference", "models").Cnn14(**settings)
    missing, unexpected = panns.load_state_dict(random_cnn14(), strict=False)
    assert not unexpected and all(k.startswith(("spectrogram_extractor", "logmel_extractor")) for k in missing)
    (tmp_path / "ckpt").mkdir()
    path = tmp_path / "ckpt" / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": panns.state_dict()}, path)
    (tmp_path / "ckpt" / "Cnn14_mAP=0.431.pth").touch()  # present, so audioldm-eval does not try to download it
    monkeypatch.chdir(tmp_path)
    audioldm_eval = package_module("audioldm_eval.feature_extractors.panns", "models").Cnn14(features_list=["2048", "logits"], **settings)
    ours = PannsEmbedding(path)

    wav = np.random.default_rng(1).normal(size=24000).astype(np.float32) * 0.1  # 1.5 s: padded to 2 s as audioldm-eval does
    x = torch.from_numpy(np.pad(wav - wav.mean(), (0, 8000)))[None]
    emb, logits = ours.embed_and_classify(wav)
    with torch.no_grad():
        a, b = panns.eval()(x), audioldm_eval.eval()(x)
    np.testing.assert_allclose(emb, a["embedding"][0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb, b["2048"][0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, b["logits"][0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), a["clipwise_output"][0].numpy(), rtol=1e-4, atol=1e-5)


def unusable_module(name: str) -> types.ModuleType:
    """Stands in for a dependency a reference module imports at its top but never calls in these tests."""
    module = types.ModuleType(name)

    def missing(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def call(*args, **kwargs):
            raise AssertionError(f"{name}.{attr} was called; the test meant it to be unused")
        return call

    module.__getattr__ = missing
    return module


def test_vggish_and_fad_equal_torchvggish_and_frechet_audio_distance(tmp_path, monkeypatch):
    """Random weights saved in torchvggish's layout, read by both; frechet_audio_distance's VGGish FAD (its
    defaults: no PCA, the final ReLU removed, all examples pooled). resampy (whose numba does not support this
    numpy), laion_clap and encodec are imported at the top of their modules but only used for other sample
    rates and models: stand-ins that fail if called take their place."""
    from evaluation.embedders.vggish import VGGish, VGGishEmbedding

    for name in ("resampy", "laion_clap", "encodec"):
        monkeypatch.setitem(sys.modules, name, unusable_module(name))
    port = package_module("torchvggish", "torchvggish")
    vggish_input = package_module("torchvggish", "vggish_input")
    fad = package_module("frechet_audio_distance", "fad").FrechetAudioDistance

    torch.manual_seed(0)
    theirs = port._vgg(postprocess=False)
    torch.save(theirs.state_dict(), tmp_path / "vggish-10086976.pth")
    theirs.embeddings = torch.nn.Sequential(*list(theirs.embeddings.children())[:-1])  # what frechet_audio_distance does
    ours = VGGishEmbedding(tmp_path / "vggish-10086976.pth")
    rng = np.random.default_rng(2)
    t = np.arange(40000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)  # 2.5 s: 2 examples
    examples = vggish_input.waveform_to_examples(wav.astype(np.float64), 16000)
    torch.testing.assert_close(ours.model.examples(torch.from_numpy(wav)), examples.detach(), atol=2e-4, rtol=1e-4)
    with torch.no_grad():
        want = theirs.eval()(examples.detach()).numpy()
    np.testing.assert_allclose(ours(wav), want, rtol=1e-3, atol=1e-4)

    gen, ref = rng.normal(size=(300, 16)), rng.normal(size=(260, 16)) * 1.3 + 0.2  # pooled example rows
    theirs_fad = fad.calculate_frechet_distance(None, *fad.calculate_embd_statistics(None, gen), *fad.calculate_embd_statistics(None, ref))
    assert frechet_distance(gen, ref) == pytest.approx(theirs_fad, rel=1e-6)
