"""Evaluate generated audio against a prepared reference split.

  python bins/tta/evaluate.py --generated DIR --reference data/processed/SynthCaps/test.json

DIR is an inference output folder (prompts.jsonl + wavs). Reports, as JSON (<DIR>/eval.json) and a table:
  - text adherence (SynthCaps rows carry attributes): per-attribute accuracy of the DSP analyser on the
    generated clips against the prompt's attributes, with chance level, and the same analyser on the
    reference audio (its sanity check: should be ~100%)
  - distribution metrics in an offline embedding (mel statistics): Frechet distance to the reference
    clips and the mean paired spectral KL(reference || generated)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.cli import run_main  # noqa: E402
from utils.errors import UserError  # noqa: E402


def evaluate(generated: Path, reference: Path) -> dict:
    import numpy as np

    from evaluation.attributes import CHANCE, AttributeAnalyser
    from evaluation.distribution import MelStatsEmbedding, frechet_distance, kl_divergence
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
    mel_cfg = MelConfig(**read_json(mel_stamp)["audio"]) if mel_stamp.exists() else MelConfig()
    by_caption = {r["Caption"]: r for r in ref_rows}
    load = lambda p: load_audio(p, mel_cfg.sample_rate)  # noqa: E731
    embed = MelStatsEmbedding(mel_cfg)
    analyser = AttributeAnalyser(mel_cfg)

    gen_wavs = [load(generated / r["wav"]) for r in gen_rows]
    ref_uids = list(dict.fromkeys(r["Uid"] for r in ref_rows))
    ref_wavs = {uid: load(reference.parent / "wav" / f"{uid}.wav") for uid in ref_uids}
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

    # distribution metrics
    g = np.stack([embed(w) for w in gen_wavs])
    r = np.stack([embed(w) for w in ref_wavs.values()])
    if len(g) > 1 and len(r) > 1:
        result["frechet_distance"] = frechet_distance(g, r)
    pairs = [(embed.spectrum(ref_wavs[by_caption[row["prompt"]]["Uid"]]), embed.spectrum(w))
             for row, w in zip(gen_rows, gen_wavs) if row["prompt"] in by_caption]
    if pairs:
        result["kl_spectrum"] = float(np.mean([kl_divergence(p, q) for p, q in pairs]))
    return result


def print_table(result: dict) -> None:
    print(f"{'metric':<28}{'value':>10}{'chance':>10}{'reference':>11}")
    for attr, v in result.get("text_adherence", {}).items():
        print(f"{attr + ' accuracy':<28}{v['accuracy']:>10.3f}{v['chance']:>10.3f}{v['reference_accuracy']:>11.3f}")
    for key in ("frechet_distance", "kl_spectrum"):
        if key in result:
            print(f"{key + ' (' + result['embedding'] + ')' if key == 'frechet_distance' else key:<28}{result[key]:>10.3f}")
    print(f"{'generated clips':<28}{result['generated']:>10d}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generated", type=Path, required=True, help="inference output folder (prompts.jsonl + wavs)")
    p.add_argument("--reference", type=Path, required=True, help="prepared split json, e.g. data/processed/SynthCaps/test.json")
    p.add_argument("--output", type=Path, help="result JSON (default: <generated>/eval.json)")
    args = p.parse_args(argv)
    from utils.io import write_json

    result = evaluate(args.generated, args.reference)
    out = args.output or args.generated / "eval.json"
    write_json(out, result)
    print_table(result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
