"""Prepare a captioned audio corpus into <processed_dir>/<Dataset>/{wav,mel,train.json,valid.json,test.json}.

  --dataset SynthCaps                 the built-in synthetic corpus (generated, no download)
  --dataset AudioCaps --raw_dir DIR   downloaded AudioCaps clips + train.csv/val.csv/test.csv
  --dataset folder --raw_dir DIR      your own audio + metadata.csv / metadata.jsonl (file,caption)
  --dataset SynthEdits                edit triplets made from SynthCaps sounds, for the AUDIT editor (generated)
  --dataset edit_folder --raw_dir DIR your own edit triplets: audio + metadata.csv / .jsonl (input,output,instruction)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import add_config_args, check_number, check_output_dir, entry_point_parser, run_main
from utils.config import load_config
from utils.errors import UserError

DEFAULT_CONFIGS = {
    "SynthCaps": "egs/tta/prepare/synthcaps.json",
    "AudioCaps": "egs/tta/prepare/audiocaps.json",
    "folder": "egs/tta/prepare/folder.json",
    "SynthEdits": "egs/tta/audit/prepare_synthedits.json",
    "edit_folder": "egs/tta/prepare/folder.json",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = entry_point_parser(__doc__)
    p.add_argument("--dataset", required=True, choices=list(DEFAULT_CONFIGS), help="which front-end to use")
    p.add_argument("--raw_dir", type=Path, help="input audio folder (AudioCaps / folder)")
    p.add_argument("--captions_dir", type=Path, help="AudioCaps caption tables (default: --raw_dir)")
    p.add_argument("--processed_dir", type=Path, help="output root (default: data.processed_dir of the config)")
    p.add_argument("--name", help="dataset name for --dataset folder / edit_folder (default: the folder's name)")
    p.add_argument("--num_workers", type=int, help="worker processes (default: preprocess.num_workers, 0 = all cores)")
    p.add_argument("--overwrite", action="store_true", help="re-prepare clips that already have a mel")
    add_config_args(p, None)
    p.set_defaults(config=None)
    for action in p._actions:
        if action.dest == "config":
            action.required = False
            action.help = "JSON5 config (default: egs/tta/prepare/<dataset>.json)"
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # torch and librosa: imported after parsing, so --help answers at once
    from preprocessors import audiocaps, folder, synthcaps, synthedits
    from preprocessors.prepare import PrepareReport, prepare_clips
    from utils.schema import BaseConfig

    overrides = list(args.overrides)
    check_number("--num_workers", args.num_workers, 0)
    if args.num_workers is not None:
        overrides.append(f"preprocess.num_workers={args.num_workers}")
    cfg, _ = load_config(args.config or DEFAULT_CONFIGS[args.dataset], BaseConfig, overrides)
    pre, audio = cfg.preprocess, cfg.audio
    processed = args.processed_dir or Path(cfg.data.processed_dir)
    report = PrepareReport()
    generator = ""
    if args.dataset == "SynthCaps":
        generator = synthcaps.GENERATOR
        name = "SynthCaps"
        clips = synthcaps.build_clips(
            pre.synthcaps_clips, audio.segment_seconds, audio.sample_rate, pre.valid_ratio, pre.test_ratio, pre.split_seed
        )
    elif args.dataset == "SynthEdits":
        generator = synthedits.GENERATOR
        name = "SynthEdits"
        clips = synthedits.build_clips(
            pre.synthcaps_clips, audio.segment_seconds, audio.sample_rate, pre.valid_ratio, pre.test_ratio, pre.split_seed
        )
    elif args.raw_dir is None:
        raise UserError(f"--dataset {args.dataset} needs --raw_dir DIR (the folder with the audio files)")
    elif args.dataset == "AudioCaps":
        name = "AudioCaps"
        clips = audiocaps.build_clips(args.raw_dir, args.captions_dir or args.raw_dir, report)
    else:
        name = args.name or args.raw_dir.resolve().name
        build = folder.build_triplets if args.dataset == "edit_folder" else folder.build_clips
        clips = build(args.raw_dir, name, pre.valid_ratio, pre.test_ratio, pre.split_seed, report)
    out_dir = processed / name
    check_output_dir("--processed_dir", out_dir)
    print(f"preparing {len(clips)} clips of {name} into {out_dir}")
    prepare_clips(clips, out_dir, audio, pre, overwrite=args.overwrite, report=report, generator=generator)
    if report.missing:
        shown = ", ".join(report.missing[:5]) + (" ..." if len(report.missing) > 5 else "")
        print(f"{len(report.missing)} clips listed in the metadata are missing on disk: {shown}")
    print(f"{name}: {report.summary()}; metadata in {out_dir}")
    if report.prepared + report.reused == 0:
        raise UserError(f"no usable clips for {name}; check --raw_dir and the file names")
    return 0


if __name__ == "__main__":
    run_main(main)
