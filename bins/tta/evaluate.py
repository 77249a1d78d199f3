"""Evaluate generated audio against a prepared reference split.

  python bins/tta/evaluate.py --generated DIR --reference data/processed/SynthCaps/test.json

DIR is an inference output folder (prompts.jsonl + wavs). Reports, as JSON (<DIR>/eval.json) and a table:
  - text adherence (SynthCaps rows carry attributes): per-attribute accuracy of the DSP analyser on the
    generated clips against the prompt's attributes, with chance level, and the same analyser on the
    reference audio (its sanity check: should be ~100%)
  - distribution metrics: Frechet distance to the reference clips in an embedding (offline default
    `mel_stats`; `--embedding panns|vggish|clap --embedding_path CKPT` for PANNs Cnn14 (FD as AudioLDM),
    VGGish (FAD) or CLAP), and the mean paired spectral KL(reference || generated); with PANNs also the
    paired KL over its AudioSet class distributions and the Inception Score, as audioldm-eval computes them
    (evaluation/evaluate.py says which number matches which tool)
  - with --clap FOLDER: the CLAP text-audio score (mean cosine between each clip and its prompt)
"""

from __future__ import annotations

from pathlib import Path

from utils.cli import check_output_dir, entry_point_parser, resolve_device, run_main
from utils.errors import UserError


def print_table(result: dict) -> None:
    print(f"{'metric':<28}{'value':>10}{'chance':>10}{'reference':>11}")
    for attr, v in result.get("text_adherence", {}).items():
        print(f"{attr + ' accuracy':<28}{v['accuracy']:>10.3f}{v['chance']:>10.3f}{v['reference_accuracy']:>11.3f}")
    for key in ("frechet_distance", "kl_spectrum", "kl_softmax", "kl_sigmoid", "inception_score", "clap_score"):
        if key in result:
            print(f"{key + ' (' + result['embedding'] + ')' if key == 'frechet_distance' else key:<28}{result[key]:>10.3f}")
    print(f"{'generated clips':<28}{result['generated']:>10d}")
    unpaired = result["generated"] - result["paired_clips"]
    if result["mode"] == "paired" and unpaired:
        print(f"note: {unpaired} of {result['generated']} prompts are not captions of --reference, so the paired measures "
              f"(KL, adherence) leave them out; --unpaired compares the distributions only")


def main(argv: list[str] | None = None) -> int:
    p = entry_point_parser(__doc__)
    p.add_argument("--generated", type=Path, required=True, help="inference output folder (prompts.jsonl + wavs)")
    p.add_argument("--reference", type=Path, required=True, help="prepared split json, e.g. data/processed/SynthCaps/test.json")
    p.add_argument("--embedding", default="mel_stats", help="embedding for the distribution metrics: mel_stats (offline "
                   "default), panns, vggish or clap")
    p.add_argument("--embedding_path", help="local checkpoint for --embedding: Cnn14 .pth (16 kHz if '16k' is in its name, "
                   "else 32 kHz), VGGish .pth, or a CLAP folder")
    p.add_argument("--clap", help="local CLAP folder (e.g. laion/clap-htsat-unfused) for the text-audio CLAP score")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, ...")
    p.add_argument("--output", type=Path, help="result JSON (default: <generated>/eval.json)")
    p.add_argument("--unpaired", action="store_true", help="compare distributions only (FD, IS), not each clip with the "
                   "reference clip of its prompt (KL); for prompts that are not the reference's captions")
    args = p.parse_args(argv)
    from utils.io import write_json

    out = args.output or args.generated / "eval.json"
    check_output_dir("--output", out.parent)
    if out.is_dir():
        raise UserError(f"--output {out} is a folder; give a file path for the result JSON")
    from evaluation.evaluate import evaluate

    result = evaluate(args.generated, args.reference, args.embedding, args.embedding_path, args.clap, resolve_device(args.device),
                      not args.unpaired)
    write_json(out, result)
    print_table(result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
