"""Generate audio from text with a trained AudioLDM experiment.

  python bins/tta/inference.py --text "A man is whistling"
  python bins/tta/inference.py --text_file prompts.txt --sampler ddim --num_steps 200 --vocoder hifigan --vocoder_path ckpts/tta/hifigan

Edit a clip with text, zero-shot (AudioLDM's editing, no training):
  --init_audio F --strength 0.5                 audio-to-audio: keep F's structure, move it toward the text
  --init_audio F --strength 0.9 --source_prompt "A low beep repeats"
                                                audio-to-audio by inverting F with its own caption (DDPM
                                                inversion): keeps more of F than noising it
  --init_audio F --inpaint 1.0:1.8              regenerate 1.0-1.8 s (repeatable), keep the rest
  --init_audio F --duration 10                  continue F to 10 s (and any --duration beyond the training
                                                length is made in overlapping windows, with or without F)
  --init_audio F --super_resolution 4000        regenerate the mel bands above 4 kHz, keep those below
  --num_candidates 4 --clap DIR                 make 4 per prompt, keep the best by CLAP text-audio score

With no --checkpoint_path the newest trained AudioLDM experiment under ckpts/tta is used (and named).
Writes <output_dir>/<index>_<slug>.wav and .png (its mel) plus prompts.jsonl, and prints the paths.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.tta.audioldm import SAMPLER_NAMES, parse_span
from utils.cli import check_input_file, check_number, entry_point_parser, output_dir_or_next_run, resolve_device, run_main
from utils.errors import UserError
from utils.io import read_csv, read_json, read_text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = entry_point_parser(__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", action="append", help="a prompt (repeatable)")
    src.add_argument("--text_file", type=Path, help="one prompt per line")
    src.add_argument("--captions", type=Path, help="a caption table: prepared split .json or a .csv with a 'caption' column")
    p.add_argument("--limit", type=int, help="use only the first N prompts (with --captions / --text_file)")
    p.add_argument("--checkpoint_path", type=Path, help="experiment, export or checkpoints/step_* folder (default: newest experiment)")
    p.add_argument("--output_dir", type=Path, help="default: a new numbered folder, <experiment>/inference/001, 002, ...")
    p.add_argument("--negative_text", help="prompt to steer away from (replaces the null prompt in CFG)")
    p.add_argument("--num_steps", type=int, help="sampler steps (default: the experiment's sampler.num_steps)")
    p.add_argument("--guidance_scale", type=float, help="classifier-free guidance scale (1 disables CFG)")
    p.add_argument("--sampler", help=f"one of {', '.join(SAMPLER_NAMES)} (default: the experiment's sampler.name)")
    p.add_argument("--seed", type=int, default=0, help="clip i is drawn with seed + i: same seed, same audio, whatever --batch_size")
    p.add_argument("--duration", type=float, help="seconds (rounded to the latent stride; default: the training length)")
    p.add_argument("--num_samples", type=int, default=1, help="samples per prompt")
    p.add_argument("--batch_size", type=int, default=8, help="prompts per batch")
    edit = p.add_argument_group("editing a given clip")
    edit.add_argument("--init_audio", type=Path, help="the clip to edit or continue (any format librosa reads)")
    edit.add_argument("--strength", type=float, help="audio-to-audio: in (0, 1]; 1 ignores the clip, near 0 returns it")
    edit.add_argument("--source_prompt", help="audio-to-audio: a caption of --init_audio; inverts the clip instead of noising it (ddim sampler)")
    edit.add_argument("--inpaint", action="append", default=[], metavar="START:END", help="seconds to regenerate (repeatable)")
    edit.add_argument("--resample", type=int, default=1, help="inpainting, super-resolution, continuation: take each step this many times (RePaint; ddim or ddpm)")
    edit.add_argument("--super_resolution", type=float, metavar="CUTOFF_HZ", help="regenerate the mel bands above this frequency")
    edit.add_argument("--num_candidates", type=int, default=1, help="make N per prompt and keep the best by --clap score")
    edit.add_argument("--clap", type=Path, metavar="DIR", help="a local CLAP model folder (e.g. laion/clap-htsat-unfused) to score candidates")
    p.add_argument("--vocoder", help="griffinlim or hifigan (default: the export's own vocoder if it has one, else griffinlim)")
    p.add_argument("--vocoder_path", help="HiFi-GAN folder or experiment (implies --vocoder hifigan)")
    p.add_argument("--lora", action="append", default=[], type=Path, help="a LoRA adapter (experiment or export) to apply (repeatable)")
    p.add_argument("--lora_scale", action="append", default=[], type=float, help="strength of each --lora in order (default 1)")
    p.add_argument("--merge_lora", type=Path, metavar="OUT", help="write the model with the --lora adapters merged as an export to OUT and stop")
    p.add_argument("--experiments_root", type=Path, default=Path("ckpts/tta"), help="where to look for the newest experiment")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    return p.parse_args(argv)


def read_captions(path: Path) -> list[str]:
    """Distinct captions, in order, from a prepared split (.json rows with 'Caption') or a CSV ('caption' column)."""
    check_input_file("--captions", path)
    if path.suffix == ".json":
        rows = read_json(path)
        if not isinstance(rows, list) or not all(isinstance(row, dict) and "Caption" in row for row in rows):
            raise UserError(f"--captions {path}: not a prepared split (a list of rows, each with a 'Caption')")
        caps = [row["Caption"] for row in rows]
    else:
        reader = read_csv(path)
        if "caption" not in (reader.fieldnames or []):
            raise UserError(f"--captions {path}: no 'caption' column (found {reader.fieldnames})")
        caps = [row["caption"] for row in reader]
    caps = list(dict.fromkeys(c.strip() for c in caps if c and c.strip()))
    if not caps:
        raise UserError(f"--captions {path} has no captions")
    return caps


def load_prompts(args: argparse.Namespace) -> list[str]:
    if args.captions is not None:
        return read_captions(args.captions)[: args.limit]
    if args.text_file is not None:
        check_input_file("--text_file", args.text_file)
        prompts = [line.strip() for line in read_text(args.text_file).splitlines() if line.strip()]
        if not prompts:
            raise UserError(f"--text_file {args.text_file} has no prompts")
        return prompts[: args.limit]
    if any(not t.strip() for t in args.text):
        raise UserError("empty --text: give a non-empty prompt")
    return [t.strip() for t in args.text]


def lora_pairs(args: argparse.Namespace) -> list[tuple[Path, float]]:
    if len(args.lora_scale) > len(args.lora):
        raise UserError(f"{len(args.lora_scale)} --lora_scale values for {len(args.lora)} --lora adapters")
    if args.merge_lora is not None and not args.lora:
        raise UserError("--merge_lora needs at least one --lora")
    return [(path, args.lora_scale[i] if i < len(args.lora_scale) else 1.0) for i, path in enumerate(args.lora)]


def check_edit_options(args: argparse.Namespace) -> list[tuple[float, float]]:
    """The editing options' checks that need no model (so they fail in a second); returns the inpaint spans."""
    chosen = [o for o, v in (("--strength", args.strength), ("--inpaint", args.inpaint),
                             ("--super_resolution", args.super_resolution)) if v not in (None, [])]
    if len(chosen) > 1:
        raise UserError(f"{' and '.join(chosen)} are different edits: give one of them")
    if args.init_audio is None:
        if chosen:
            raise UserError(f"{chosen[0]} edits a clip: give it with --init_audio F")
    else:
        check_input_file("--init_audio", args.init_audio)
        if not chosen and args.duration is None:
            raise UserError("--init_audio needs an edit: --strength, --inpaint, --super_resolution, or --duration to continue it")
    if args.resample != 1 and (args.init_audio is None or args.strength is not None):
        raise UserError("--resample applies to --inpaint, --super_resolution and continuation (--init_audio F --duration D)")
    if args.source_prompt is not None and args.strength is None:
        raise UserError("--source_prompt describes the clip for audio-to-audio: give it with --init_audio F --strength S")
    check_number("--num_candidates", args.num_candidates, 1)
    check_number("--resample", args.resample, 1)
    if args.num_candidates > 1 and args.clap is None:
        raise UserError("--num_candidates needs a scorer: --clap DIR (a local CLAP model folder)")
    if args.clap is not None and not args.clap.is_dir():
        raise UserError(f"--clap {args.clap} is not a folder")
    return [parse_span(s) for s in args.inpaint]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loras = lora_pairs(args)
    spans = check_edit_options(args)
    if args.merge_lora is None and not (args.text or args.text_file or args.captions):
        raise UserError("give prompts: --text, --text_file or --captions (or --merge_lora OUT)")
    prompts = [] if args.merge_lora is not None else load_prompts(args)
    for option, value, minimum in (("--limit", args.limit, 1), ("--num_steps", args.num_steps, 1), ("--guidance_scale", args.guidance_scale, 0),
                                   ("--num_samples", args.num_samples, 1), ("--batch_size", args.batch_size, 1), ("--seed", args.seed, 0),
                                   *(("--lora_scale", s, None) for s in args.lora_scale)):
        check_number(option, value, minimum)
    path = args.checkpoint_path
    if path is None:
        from models.tta.artifact import newest_experiment

        path = newest_experiment(args.experiments_root, "audioldm", "sh egs/tta/audioldm/run_train.sh")
        print(f"using the newest experiment: {path}")
    if not path.exists():
        raise UserError(f"--checkpoint_path {path} does not exist")
    if args.sampler is not None and args.sampler not in SAMPLER_NAMES:  # before importing the models (seconds)
        raise UserError(f"unknown sampler '{args.sampler}'; choose one of {', '.join(SAMPLER_NAMES)}")
    from models.tta.audioldm.pipeline import TTAPipeline, check_duration
    from utils.audio import save_wav
    from utils.io import slugify, write_jsonl
    from utils.plot import save_mel_png

    if args.duration is not None:
        check_duration(args.duration)
    args.device = resolve_device(args.device)
    is_checkpoint = (path / "unet.safetensors").exists()
    exp = path.parent.parent if is_checkpoint else path
    if is_checkpoint:
        pipe = TTAPipeline.from_checkpoint(path, args.vocoder, args.vocoder_path, args.device)
        print(f"using the weights of checkpoint {path}")
    else:
        pipe = TTAPipeline.from_experiment(exp, args.vocoder, args.vocoder_path, args.device, loras)
    if args.merge_lora is not None:
        from models.tta.audioldm.lora import merge_adapters

        merge_adapters(pipe.unet)
        pipe.save(args.merge_lora, {"base": str(exp), "loras": [[str(p), s] for p, s in loras]})
        print(f"wrote the merged export {args.merge_lora}")
        return 0
    edit = None
    if args.init_audio is not None:
        from models.tta.audioldm.editing import Edit
        from utils.audio import load_audio

        edit = Edit([load_audio(args.init_audio, pipe.mel_cfg.sample_rate)], args.strength, spans,
                    args.super_resolution, args.resample, source=str(args.init_audio), source_prompt=args.source_prompt)
    scorer = None
    if args.clap is not None:
        from evaluation.embedders.clap import ClapEmbedding

        scorer = ClapEmbedding(args.clap, args.device).rank
    out_dir = output_dir_or_next_run("--output_dir", args.output_dir, exp / "inference")
    rows, t0, n = [], time.time(), 0
    per_prompt = args.num_samples * args.num_candidates
    for start in range(0, len(prompts), args.batch_size):
        batch = prompts[start : start + args.batch_size]
        out = pipe(
            batch, negative_prompt=args.negative_text, num_steps=args.num_steps, guidance_scale=args.guidance_scale,
            sampler=args.sampler, seed=args.seed + start * per_prompt, duration=args.duration, num_samples=args.num_samples,
            progress=len(prompts) == 1, edit=edit, num_candidates=args.num_candidates, scorer=scorer,
        )
        for i, (prompt, wav, mel) in enumerate(zip(out.prompts, out.wav, out.mel)):
            stem = f"{n:04d}_{slugify(prompt)}"
            save_wav(out_dir / f"{stem}.wav", wav.numpy(), pipe.mel_cfg.sample_rate)
            save_mel_png(out_dir / f"{stem}.png", mel.numpy(), prompt)
            row = {"index": n, "prompt": prompt, "wav": f"{stem}.wav", "png": f"{stem}.png", "seconds": out.seconds, "seed": out.seeds[i]}
            if out.scores is not None:
                row.update(clap_score=out.scores[i], candidates=args.num_candidates)
            rows.append({**row, **(edit.as_dict() if edit else {})})
            print(out_dir / f"{stem}.wav")
            n += 1
        write_jsonl(out_dir / "prompts.jsonl", rows)  # after every batch: a stopped run keeps the manifest of its clips
    dt = time.time() - t0
    print(f"wrote {n} clips to {out_dir} in {dt:.1f} s (real-time factor {dt / (n * rows[0]['seconds']):.2f})")
    return 0


if __name__ == "__main__":
    run_main(main)
