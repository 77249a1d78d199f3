"""Edit a clip by an instruction with a trained AUDIT editor.

  python bins/tta/edit.py --audio in.wav --instruction "Make the beep higher"
  python bins/tta/edit.py --audio in.wav --instruction "Add a high beep" --instruction "Remove the hiss" --seed 3

With no --checkpoint_path the newest trained AUDIT experiment under ckpts/tta is used (and named).
Writes <output_dir>/<index>_<slug>.wav and .png (its mel) plus prompts.jsonl, and prints the paths.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.tta.audioldm import SAMPLER_NAMES
from utils.cli import check_input_file, check_number, entry_point_parser, output_dir_or_next_run, resolve_device, run_main
from utils.errors import UserError

HOW_TO_TRAIN = "sh egs/tta/audit/run_train.sh"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = entry_point_parser(__doc__)
    p.add_argument("--audio", type=Path, required=True, help="the clip to edit (any format librosa reads)")
    p.add_argument("--instruction", action="append", required=True, help="what to do with it (repeatable: one edit each)")
    p.add_argument("--checkpoint_path", type=Path, help="AUDIT experiment or export folder (default: newest experiment)")
    p.add_argument("--output_dir", type=Path, help="default: a new numbered folder, <experiment>/edits/001, 002, ...")
    p.add_argument("--num_steps", type=int, help="sampler steps (default: the experiment's sampler.num_steps)")
    p.add_argument("--guidance_scale", type=float, help="instruction guidance (default: the experiment's; 1 = none)")
    p.add_argument("--source_guidance_scale", type=float, help="how closely to keep the clip (default: the experiment's; 1 = none)")
    p.add_argument("--sampler", help=f"one of {', '.join(SAMPLER_NAMES)} (default: the experiment's sampler.name)")
    p.add_argument("--seed", type=int, default=0, help="edit i is drawn with seed + i")
    p.add_argument("--vocoder", help="griffinlim or hifigan (default: the export's own vocoder if it has one, else griffinlim)")
    p.add_argument("--vocoder_path", help="HiFi-GAN folder or experiment (implies --vocoder hifigan)")
    p.add_argument("--experiments_root", type=Path, default=Path("ckpts/tta"), help="where to look for the newest experiment")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if any(not t.strip() for t in args.instruction):
        raise UserError("empty --instruction: say what to do with the clip")
    check_input_file("--audio", args.audio)
    for option, value, minimum in (("--num_steps", args.num_steps, 1), ("--guidance_scale", args.guidance_scale, 0),
                                   ("--source_guidance_scale", args.source_guidance_scale, 0), ("--seed", args.seed, 0)):
        check_number(option, value, minimum)
    if args.sampler is not None and args.sampler not in SAMPLER_NAMES:
        raise UserError(f"unknown sampler '{args.sampler}'; choose one of {', '.join(SAMPLER_NAMES)}")
    path = args.checkpoint_path
    if path is None:
        from models.tta.artifact import newest_experiment

        path = newest_experiment(args.experiments_root, "audit", HOW_TO_TRAIN)
        print(f"using the newest experiment: {path}")
    if not path.exists():
        raise UserError(f"--checkpoint_path {path} does not exist")
    from models.tta.audit.pipeline import EditorPipeline
    from utils.audio import load_audio, save_wav
    from utils.io import slugify, write_jsonl
    from utils.plot import save_mel_png

    device = resolve_device(args.device)
    pipe = EditorPipeline.from_experiment(path, args.vocoder, args.vocoder_path, device)
    wav = load_audio(args.audio, pipe.mel_cfg.sample_rate)  # an unreadable file: one line naming it
    out_dir = output_dir_or_next_run("--output_dir", args.output_dir, path / "edits")
    t0 = time.time()
    out = pipe([wav], [t.strip() for t in args.instruction], seed=args.seed, source=str(args.audio), num_steps=args.num_steps,
               guidance_scale=args.guidance_scale, source_guidance_scale=args.source_guidance_scale, sampler=args.sampler,
               progress=len(args.instruction) == 1)
    rows = []
    for i, (instruction, edited, mel) in enumerate(zip(out.prompts, out.wav, out.mel)):
        stem = f"{i:04d}_{slugify(instruction)}"
        save_wav(out_dir / f"{stem}.wav", edited.numpy(), pipe.mel_cfg.sample_rate)
        save_mel_png(out_dir / f"{stem}.png", mel.numpy(), instruction)
        rows.append({"index": i, "instruction": instruction, "audio": str(args.audio), "wav": f"{stem}.wav", "png": f"{stem}.png",
                     "seconds": out.seconds, "seed": out.seeds[i],
                     **{k: v for k, v in (("sampler", args.sampler), ("num_steps", args.num_steps), ("guidance_scale", args.guidance_scale),
                                          ("source_guidance_scale", args.source_guidance_scale)) if v is not None}})
        print(out_dir / f"{stem}.wav")
    write_jsonl(out_dir / "prompts.jsonl", rows)
    print(f"wrote {len(rows)} edits to {out_dir} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
