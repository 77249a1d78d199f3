"""Build report.html from an inference folder, its evaluation (eval.json) and the experiments behind it.

  python bins/tta/report.py --generated DIR --reference data/processed/SynthCaps/test.json \\
      --vae ckpts/tta/autoencoderkl_synthcaps --experiments ckpts/tta/autoencoderkl_synthcaps ckpts/tta/audioldm_synthcaps
"""

from __future__ import annotations

from pathlib import Path

from utils.cli import check_output_dir, entry_point_parser, run_main
from utils.errors import UserError
from utils.io import read_json


def main(argv: list[str] | None = None) -> int:
    p = entry_point_parser(__doc__)
    p.add_argument("--generated", type=Path, required=True)
    p.add_argument("--reference", type=Path, required=True)
    p.add_argument("--vae", type=Path, help="stage-1 experiment for the reconstruction figure")
    p.add_argument("--experiments", type=Path, nargs="*", default=[], help="experiments whose training curves to plot")
    p.add_argument("--output_dir", type=Path, help="default: --generated")
    p.add_argument("--note", action="append", default=[], help="a line of text for the top of the report")
    args = p.parse_args(argv)
    from evaluation.report import write_report

    eval_json = args.generated / "eval.json"
    if not eval_json.exists():
        raise UserError(f"{eval_json} not found; run bins/tta/evaluate.py --generated {args.generated} first")
    check_output_dir("--output_dir", args.output_dir or args.generated)
    path = write_report(args.output_dir or args.generated, args.generated, read_json(eval_json),
                        args.vae, args.experiments, args.reference, args.note)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
