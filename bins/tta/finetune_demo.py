"""The fine-tuning demo's two steps around training (sh egs/tta/finetune/run.sh runs all of it):

  python bins/tta/finetune_demo.py folder --out data/finetune/waterfall     # own-folder dataset: wavs + metadata.csv
  python bins/tta/finetune_demo.py score --base ckpts/tta/audioldm_synthcaps --lora ckpts/tta/lora_waterfall \
      --test data/processed/SynthCaps/test.json --output exp/finetune/waterfall.json

`score` generates held-out prompts with the new word and the demo's own held-out test prompts, with the base
model and with the LoRA, and prints adherence before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import check_input_file, check_number, check_output_dir, entry_point_parser, run_main
from utils.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = entry_point_parser(__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("folder", help="write the own-folder dataset (wavs + metadata.csv)")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--new", type=int, default=150, help="clips of the taught sound captioned with the new word")
    f.add_argument("--replay", type=int, default=150, help="clips of every sound with their usual captions")
    f.add_argument("--seconds", type=float, default=2.56)
    f.add_argument("--seed", type=int, default=7)
    s = sub.add_parser("score", help="adherence before and after the LoRA")
    s.add_argument("--base", type=Path, required=True, help="the base experiment or export")
    s.add_argument("--lora", type=Path, required=True, help="the LoRA experiment")
    s.add_argument("--test", type=Path, required=True, help="the base model's held-out split (rows with Attributes)")
    s.add_argument("--limit", type=int, default=120, help="held-out test prompts (the demo's 120 distinct ones)")
    s.add_argument("--new_prompts", type=int, default=60, help="held-out prompts with the new word")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (prompt i draws its noise from seed + i)")
    s.add_argument("--output", type=Path, required=True, help="result JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "folder":
        check_number("--new", args.new, 1)
        check_number("--replay", args.replay, 0)
        check_output_dir("--out", args.out)
        from evaluation.new_word import write_folder

        n = write_folder(args.out, args.new, args.replay, args.seconds, 16000, args.seed)
        print(f"wrote {n} clips and {args.out / 'metadata.csv'}")
        return 0
    check_number("--limit", args.limit, 1)
    check_number("--new_prompts", args.new_prompts, 1)
    check_output_dir("--output", args.output.parent)
    check_input_file("--test", args.test, "run the demo first (sh egs/tta/demo/run.sh)")
    from evaluation.new_word import NEW_WORD, adherence, new_word_prompts
    from models.tta.audioldm.pipeline import TTAPipeline
    from preprocessors.synthcaps import Attributes
    from utils.io import read_json, write_json

    rows = read_json(args.test)
    held_out = [(r["Caption"], Attributes(**r["Attributes"])) for r in rows if "Attributes" in r][: args.limit]
    new = new_word_prompts(args.new_prompts, seed=123)
    result = {"new_word": NEW_WORD, "seed": args.seed, "examples": [p for p, _ in new[:3]]}
    for name, path in (("before", args.base), ("after", args.lora)):
        pipe = TTAPipeline.from_experiment(path)
        result[name] = {"new_word": adherence(pipe, new, args.seed), "held_out": adherence(pipe, held_out, args.seed)}
        print(f"scored {name}", flush=True)
    write_json(args.output, result)
    print("\n| prompts | measure | before | after |\n|---|---|---|---|")
    for group, label in (("new_word", f"{len(new)} with \"{NEW_WORD}\" (held-out phrasings)"), ("held_out", f"{len(held_out)} held-out test")):
        for attr in ("sound_type", "pitch", "pattern"):
            b, a = result["before"][group][attr], result["after"][group][attr]
            print(f"| {label} | {attr} | {100 * b:.1f}% | {100 * a:.1f}% |")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    run_main(main)
