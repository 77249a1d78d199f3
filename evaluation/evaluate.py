"""Evaluate generated audio against a prepared reference split; see bins/tta/evaluate.py for the measures.

Which numbers match which published tool (each proven on the same weights or features in
tests/test_reference_tools.py):
  - frechet_distance with --embedding panns: audioldm-eval's `frechet_distance` (PANNs Cnn14 16 kHz, 2048-d)
  - kl_softmax / kl_sigmoid (panns, paired): audioldm-eval's `kullback_leibler_divergence_softmax` / `_sigmoid`
  - inception_score (panns): audioldm-eval's `inception_score_mean` (10 splits, shuffle seed 2020)
  - frechet_distance with --embedding vggish: frechet_audio_distance's FAD (VGGish, no PCA, no final ReLU,
    every 0.96 s example a sample)
  - mel_stats FD and kl_spectrum: this toolkit's own, offline; comparable only between our runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.attributes import CHANCE, AttributeAnalyser
from evaluation.distribution import MelStatsEmbedding, frechet_distance, inception_score, kl_divergence, kl_sigmoid, kl_softmax
from evaluation.embedders import load_embedding
from utils.audio import load_audio
from utils.errors import UserError
from utils.io import read_json, read_jsonl
from utils.mel import MelConfig


def evaluate(generated: Path, reference: Path, embedding: str = "mel_stats", embedding_path: str | None = None,
             clap_path: str | None = None, device: str = "cpu", paired: bool = True) -> dict:
    """The result dict written as eval.json (evaluation/report.py reads it). `paired`: each generated clip is
    compared with the reference clip of its prompt (KL); unpaired, only the distributions are (FD, IS)."""
    prompts_file = generated / "prompts.jsonl"
    if not prompts_file.is_file():
        raise UserError(f"{prompts_file} not found; --generated must be an inference output folder")
    if not reference.is_file():
        raise UserError(f"--reference {reference} not found; prepare the dataset first")
    gen_rows = read_jsonl(prompts_file)
    if not gen_rows:
        raise UserError(f"{prompts_file} lists no clips; generate some first (run_inference.sh)")
    ref_rows = read_json(reference)
    if not isinstance(ref_rows, list) or not ref_rows:
        raise UserError(f"--reference {reference} holds no rows; "
                        "give a prepared split that has clips (train.json, valid.json or test.json)")
    mel_stamp = reference.parent / "mel" / "mel_config.json"
    if not mel_stamp.is_file():  # the audio settings every measure below depends on; never guessed
        raise UserError(f"{mel_stamp} not found: --reference must be a split of a prepared dataset "
                        "(sh egs/tta/prepare/run_prepare.sh writes it)")
    mel_cfg = MelConfig(**read_json(mel_stamp)["audio"])
    by_caption = {r["Caption"]: r for r in ref_rows} if paired else {}
    embed = load_embedding(embedding, embedding_path, mel_cfg, device)
    spectra = embed if isinstance(embed, MelStatsEmbedding) else MelStatsEmbedding(mel_cfg)  # for the paired KL
    analyser = AttributeAnalyser(mel_cfg)

    gen_paths = [generated / r["wav"] for r in gen_rows]
    ref_uids = list(dict.fromkeys(r["Uid"] for r in ref_rows))
    ref_paths = {uid: reference.parent / "wav" / f"{uid}.wav" for uid in ref_uids}
    gen_wavs = [load_audio(p, mel_cfg.sample_rate) for p in gen_paths]
    ref_wavs = {uid: load_audio(p, mel_cfg.sample_rate) for uid, p in ref_paths.items()}
    result: dict = {"generated": len(gen_rows), "reference_clips": len(ref_uids), "embedding": embed.name,
                    "mode": "paired" if paired else "unpaired"}

    # text adherence (only where the reference rows carry measurable attributes)
    per_clip = []
    scored = [(r, w) for r, w in zip(gen_rows, gen_wavs) if "Attributes" in by_caption.get(r["prompt"], {})]
    if scored:
        attrs = list(CHANCE)
        hits = {a: 0 for a in attrs}
        for row, wav in scored:
            want = by_caption[row["prompt"]]["Attributes"]
            got = analyser(wav)
            for a in attrs:
                hits[a] += got[a] == want[a]
            per_clip.append({"wav": row["wav"], "prompt": row["prompt"], "expected": want, "measured": got})
        ref_hits = {a: 0 for a in attrs}
        ref_attr_rows = [r for r in ref_rows if "Attributes" in r]
        for r in ref_attr_rows:
            got = analyser(ref_wavs[r["Uid"]])
            for a in attrs:
                ref_hits[a] += got[a] == r["Attributes"][a]
        result["text_adherence"] = {
            a: {"accuracy": hits[a] / len(scored), "chance": CHANCE[a], "reference_accuracy": ref_hits[a] / max(1, len(ref_attr_rows))}
            for a in attrs
        }
        result["scored_clips"] = len(scored)
    result["per_clip"] = per_clip
    result["paired_clips"] = sum(row["prompt"] in by_caption for row in gen_rows)

    # distribution metrics, in the embedder's own sample rate
    if embed.sample_rate == mel_cfg.sample_rate:
        gen_e, ref_e = gen_wavs, ref_wavs
    else:
        gen_e = [load_audio(p, embed.sample_rate) for p in gen_paths]
        ref_e = {uid: load_audio(p, embed.sample_rate) for uid, p in ref_paths.items()}
    # a tagger (PANNs) gives the embedding and its class probabilities in one pass per clip
    run = embed.embed_and_classify if hasattr(embed, "embed_and_classify") else (lambda w: (embed(w), None))
    gen_out = [run(w) for w in gen_e]
    ref_out = {uid: run(w) for uid, w in ref_e.items()}
    # a clip gives one row (a clip embedding) or several (VGGish's examples, each a sample in FAD)
    g, r = (np.concatenate([np.atleast_2d(e) for e, _ in out]) for out in (gen_out, list(ref_out.values())))
    if len(g) > 1 and len(r) > 1:
        result["frechet_distance"] = frechet_distance(g, r)
    pairs = [(spectra.spectrum(ref_wavs[by_caption[row["prompt"]]["Uid"]]), spectra.spectrum(w))
             for row, w in zip(gen_rows, gen_wavs) if row["prompt"] in by_caption]
    if pairs:
        result["kl_spectrum"] = float(np.mean([kl_divergence(p, q) for p, q in pairs]))
    if gen_out[0][1] is not None:  # a tagger: audioldm-eval's IS over the generated clips, KL over the pairs
        result["inception_score"] = inception_score(np.stack([logits for _, logits in gen_out]))
        paired_logits = [(ref_out[by_caption[row["prompt"]]["Uid"]][1], logits)
                         for row, (_, logits) in zip(gen_rows, gen_out) if row["prompt"] in by_caption]
        if paired_logits:
            ref_l, gen_l = (np.stack(x) for x in zip(*paired_logits))
            result["kl_softmax"], result["kl_sigmoid"] = kl_softmax(ref_l, gen_l), kl_sigmoid(ref_l, gen_l)
    if clap_path:
        from evaluation.embedders.clap import ClapEmbedding  # transformers' CLAP: only with --clap

        clap = ClapEmbedding(clap_path, device)
        clap_wavs = [load_audio(p, clap.sample_rate) for p in gen_paths]
        result["clap_score"] = float(clap.score(clap_wavs, [r["prompt"] for r in gen_rows]).mean())
    return result
