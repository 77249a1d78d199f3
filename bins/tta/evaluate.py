"""Evaluate generated audio against a prepared reference split.

  python bins/tta/evaluate.py --generated DIR --reference data/processed/SynthCaps/test.json

DIR is an inference output folder (prompts.jsonl + wavs). Reports, as JSON (<DIR>/eval.json) and a table:
  - text adherence (SynthCaps rows carry attributes): per-attribute accuracy of the DSP analyser on the
    generated clips against the prompt's attributes, with chance level, and the same analyser on the
    reference audio (its sanity check: should be ~100%)
  - distribution metrics: Frechet distance to the reference clips in an embedding (offline default
    `mel_stats`; `--embedding panns|vggish|clap --embedding_path CKPT` for PANNs Cnn14 (FD as AudioLDM),
    VGGish (FAD) or CLAP), and the mean paired spectral KL(reference || generated); with PANNs also the
    paired KL over its AudioSet class distributions and the Inception Score
  - with --clap FOLDER: the CLAP text-audio score (mean cosine between each clip and its prompt)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.cli import check_output_dir, run_main  # noqa: E402
from utils.errors import UserError  # noqa: E402


def evaluate(generated: Path, reference: Path, embedding: str = "mel_stats", embedding_path: str | None = None,
             clap_path: str | None = None, device: str = "cpu") -> dict:
    import numpy as np

    from evaluation.attributes import CHANCE, AttributeAnalyser
    from evaluation.distribution import MelStatsEmbedding, as_distribution, frechet_distance, inception_score, kl_divergence
    from evaluation.embedders import load_embedding
    from utils.audio import load_audio
    from utils.io import read_json
    from utils.mel import MelConfig

    prompts_file = generated / "prompts.jsonl"
    if not prompts_file.is_file():
        raise UserError(f"{prompts_file} not found; --generated must be an inference output folder")
    if not reference.is_file():
        raise UserError(f"--reference {reference} not found; prepare the dataset first")
    gen_rows = [json.loads(line) for line in prompts_file.read_text().splitlines() if line.strip()]
    ref_rows = read_json(reference)
    mel_stamp = reference.parent / "mel" / "mel_config.json"
    if not mel_stamp.is_file():  # the audio settings every measure below depends on; never guessed
        raise UserError(f"{mel_stamp} not found: --reference must be a split of a prepared dataset "
                        "(sh egs/tta/prepare/run_prepare.sh writes it)")
    mel_cfg = MelConfig(**read_json(mel_stamp)["audio"])
    by_caption = {r["Caption"]: r for r in ref_rows}
    embed = load_embedding(embedding, embedding_path, mel_cfg, device)
    spectra = embed if isinstance(embed, MelStatsEmbedding) else MelStatsEmbedding(mel_cfg)  # for the paired KL
    analyser = AttributeAnalyser(mel_cfg)

    gen_paths = [generated / r["wav"] for r in gen_rows]
    ref_uids = list(dict.fromkeys(r["Uid"] for r in ref_rows))
    ref_paths = {uid: reference.parent / "wav" / f"{uid}.wav" for uid in ref_uids}
    gen_wavs = [load_audio(p, mel_cfg.sample_rate) for p in gen_paths]
    ref_wavs = {uid: load_audio(p, mel_cfg.sample_rate) for uid, p in ref_paths.items()}
    result: dict = {"generated": len(gen_rows), "reference_clips": len(ref_uids), "embedding": embed.name}

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
    g, r = np.stack([e for e, _ in gen_out]), np.stack([e for e, _ in ref_out.values()])
    if len(g) > 1 and len(r) > 1:
        result["frechet_distance"] = frechet_distance(g, r)
    pairs = [(spectra.spectrum(ref_wavs[by_caption[row["prompt"]]["Uid"]]), spectra.spectrum(w))
             for row, w in zip(gen_rows, gen_wavs) if row["prompt"] in by_caption]
    if pairs:
        result["kl_spectrum"] = float(np.mean([kl_divergence(p, q) for p, q in pairs]))
    if gen_out[0][1] is not None:
        result["inception_score"] = inception_score(np.stack([p for _, p in gen_out]))
        paired = [(ref_out[by_caption[row["prompt"]]["Uid"]][1], p) for row, (_, p) in zip(gen_rows, gen_out) if row["prompt"] in by_caption]
        if paired:
            result["kl_classes"] = float(np.mean([kl_divergence(as_distribution(ref), as_distribution(p)) for ref, p in paired]))
    if clap_path:
        from evaluation.embedders.clap import ClapEmbedding

        clap = ClapEmbedding(clap_path, device)
        clap_wavs = [load_audio(p, clap.sample_rate) for p in gen_paths]
        result["clap_score"] = float(clap.score(clap_wavs, [r["prompt"] for r in gen_rows]).mean())
    return result


def print_table(result: dict) -> None:
    print(f"{'metric':<28}{'value':>10}{'chance':>10}{'reference':>11}")
    for attr, v in result.get("text_adherence", {}).items():
        print(f"{attr + ' accuracy':<28}{v['accuracy']:>10.3f}{v['chance']:>10.3f}{v['reference_accuracy']:>11.3f}")
    for key in ("frechet_distance", "kl_spectrum", "kl_classes", "inception_score", "clap_score"):
        if key in result:
            print(f"{key + ' (' + result['embedding'] + ')' if key == 'frechet_distance' else key:<28}{result[key]:>10.3f}")
    print(f"{'generated clips':<28}{result['generated']:>10d}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generated", type=Path, required=True, help="inference output folder (prompts.jsonl + wavs)")
    p.add_argument("--reference", type=Path, required=True, help="prepared split json, e.g. data/processed/SynthCaps/test.json")
    p.add_argument("--embedding", default="mel_stats", help="embedding for the distribution metrics: mel_stats (offline "
                   "default), panns, vggish or clap")
    p.add_argument("--embedding_path", help="local checkpoint for --embedding: Cnn14 .pth (16 kHz if '16k' is in its name, "
                   "else 32 kHz), VGGish .pth, or a CLAP folder")
    p.add_argument("--clap", help="local CLAP folder (e.g. laion/clap-htsat-unfused) for the text-audio CLAP score")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", type=Path, help="result JSON (default: <generated>/eval.json)")
    args = p.parse_args(argv)
    from utils.io import write_json

    out = args.output or args.generated / "eval.json"
    check_output_dir("--output", out.parent)
    if out.is_dir():
        raise UserError(f"--output {out} is a folder; give a file path for the result JSON")
    result = evaluate(args.generated, args.reference, args.embedding, args.embedding_path, args.clap, args.device)
    write_json(out, result)
    print_table(result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
