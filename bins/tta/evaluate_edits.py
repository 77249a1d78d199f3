"""Score a trained AUDIT editor on held-out SynthEdits triplets, beside zero-shot audio-to-audio editing.

  python bins/tta/evaluate_edits.py --checkpoint_path ckpts/tta/audit_synthedits
  python bins/tta/evaluate_edits.py --checkpoint_path ckpts/tta/audit_synthedits --strengths none --guidance_scale 5 --split train

Per edit type: success (the edit was made) and kept (what it should not touch is unchanged), measured with the
SynthCaps analyser, and the log-mel L1 to the true output (evaluation/audit.py); the zero-shot baseline is the
text-to-audio model the editor started from, prompted with a caption of the wanted output, at its best strength
per edit type; beside them, what the true outputs score after a round trip through the VAE and vocoder.
Writes the results as JSON (default <experiment>/eval_edits.json) and prints the table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from utils.cli import check_number, check_output_dir, entry_point_parser, resolve_device, run_main
from utils.errors import UserError
from utils.io import read_json, write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = entry_point_parser(__doc__)
    p.add_argument("--checkpoint_path", type=Path, required=True, help="AUDIT experiment or export folder")
    p.add_argument("--data", type=Path, default=Path("data/processed/SynthEdits"), help="prepared SynthEdits folder")
    p.add_argument("--split", default="test", help="test (held-out phrasings), valid (training phrasings, unseen clips) or train")
    p.add_argument("--per_type", type=int, default=10, help="triplets per edit type")
    p.add_argument("--baseline", type=Path, help="text-to-audio export for the zero-shot baseline (default: the one the editor started from)")
    # 0.5 was the best strength for no edit type in any recorded run (docs/RESULTS.md, "AUDIT"): 0.7 and 0.9 only
    p.add_argument("--strengths", default="0.7,0.9", help="zero-shot strengths to try, comma-separated; 'none' skips the baseline")
    p.add_argument("--guidance_scale", type=float, help="the editor's instruction guidance (default: the experiment's)")
    p.add_argument("--source_guidance_scale", type=float, help="the editor's source guidance (default: the experiment's)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, help="results JSON (default: <experiment>/eval_edits.json)")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    return p.parse_args(argv)


def parse_strengths(text: str) -> tuple[float, ...]:
    if text == "none":
        return ()
    try:
        values = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise UserError(f"--strengths {text!r}: give numbers in (0, 1] separated by commas, or 'none'") from None
    if not all(0 < v <= 1 for v in values):
        raise UserError(f"--strengths {text!r}: each must be in (0, 1]")
    return values


def table(result: dict) -> str:
    lines = ["| edit | clips | AUDIT success % | AUDIT kept % | AUDIT mel L1 | zero-shot strength | zero-shot success % | "
             "zero-shot kept % | zero-shot mel L1 | truth's round trip: success % | kept % | mel L1 |", "|---" * 12 + "|"]
    best = result.get("zero_shot", {}).get("best", {})
    for edit, s in result["editor"]["scores"].items():
        z, r = best.get(edit), result["round_trip"]["scores"][edit]
        zs = f"{z['strength']} | {z['success']:.1f} | {z['kept']:.1f} | {z['mel_l1']:.3f}" if z else "- | - | - | -"
        lines.append(f"| {edit} | {s['clips']} | {s['success']:.1f} | {s['kept']:.1f} | {s['mel_l1']:.3f} | {zs} | "
                     f"{r['success']:.1f} | {r['kept']:.1f} | {r['mel_l1']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for option, value, minimum in (("--per_type", args.per_type, 1), ("--batch_size", args.batch_size, 1), ("--seed", args.seed, 0),
                                   ("--guidance_scale", args.guidance_scale, 0), ("--source_guidance_scale", args.source_guidance_scale, 0)):
        check_number(option, value, minimum)
    strengths = parse_strengths(args.strengths)
    split_file = args.data / f"{args.split}.json"
    if not split_file.is_file():
        raise UserError(f"{split_file} not found; prepare the triplets with sh egs/tta/audit/run_prepare.sh")
    exp = args.checkpoint_path
    output = args.output or (exp / "eval_edits.json")
    check_output_dir("--output", output.parent)
    from evaluation.audit import EditEvaluation, pick_rows
    from models.tta.audioldm.pipeline import TTAPipeline
    from models.tta.artifact import read_artifact
    from models.tta.audit.pipeline import HOW_TO_TRAIN, STAGE, EditorPipeline

    device = resolve_device(args.device)
    t0 = time.time()
    editor = EditorPipeline.from_experiment(exp, device=device)
    rows = pick_rows(read_json(split_file), args.per_type)
    evaluation = EditEvaluation(rows, args.data / "wav", editor.mel_cfg, args.batch_size, args.seed)
    scales = {"guidance_scale": args.guidance_scale, "source_guidance_scale": args.source_guidance_scale}
    result = {"checkpoint": str(exp), "split": args.split, "editor": evaluation.editor(editor, **scales),
              "guidance": {k: editor.defaults[k] if v is None else v for k, v in scales.items()},
              "round_trip": evaluation.round_trip(editor)}
    if strengths:
        baseline = args.baseline or read_artifact(exp, STAGE, HOW_TO_TRAIN)[0]["config"]["model"]["init_from"]
        result["baseline"] = str(baseline)
        result["zero_shot"] = evaluation.zero_shot(TTAPipeline.from_experiment(baseline, device=device), strengths)
    result["seconds"] = time.time() - t0
    write_json(output, result)
    print(table(result))
    print(f"{len(rows)} triplets of {split_file} in {result['seconds']:.0f} s; results in {output}")
    return 0


if __name__ == "__main__":
    run_main(main)
