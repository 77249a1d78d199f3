"""Convert a published text-to-audio model into this toolkit's export.

  python bins/tta/convert.py --from audioldm --src audioldm-s-full-v2 --out ckpts/tta/audioldm_s_full_v2
  python bins/tta/convert.py --from audioldm-ckpt --src audioldm-s-full.ckpt --text_encoder roberta-base --out ckpts/tta/audioldm_s
  python bins/tta/convert.py --from tango --src tango2 --text_encoder flan-t5-large --out ckpts/tta/tango2
  python bins/tta/convert.py --from audioldm --src audioldm-s-full-v2 --only vae --out ckpts/tta/audioldm_vae

Sources: a diffusers AudioLDM folder (model_index.json), an original AudioLDM .ckpt, or a Tango / Tango 2
folder (main_config.json). The whole export (default) works with run_inference.sh --checkpoint_path OUT,
the Python API, evaluation and training; --only vae writes a stage-1 export (--pretrained_vae, or
model.autoencoder_path of stage 2), --only vocoder a HiFi-GAN export (--vocoder hifigan --vocoder_path OUT).
Nothing is downloaded: every file must be on disk.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import check_output_dir, entry_point_parser, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from models.tta.pretrained import KINDS, PARTS

    p = entry_point_parser(__doc__)
    p.add_argument("--from", dest="kind", required=True, choices=KINDS, help="the published layout of --src")
    p.add_argument("--src", type=Path, required=True, help="the downloaded folder (or .ckpt file)")
    p.add_argument("--out", type=Path, required=True, help="export folder to write, e.g. ckpts/tta/<name>")
    p.add_argument("--only", default="all", choices=PARTS, help="convert one part alone (default: the whole model)")
    p.add_argument("--text_encoder", type=Path,
                   help="audioldm-ckpt: a roberta-base folder; tango: a FLAN-T5 folder (config + tokenizer)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_output_dir("--out", args.out)
    from models.tta.pretrained.convert import convert

    out = convert(args.kind, args.src, args.out, args.only, args.text_encoder, args.overwrite)
    hint = {"all": f"sh egs/tta/audioldm/run_inference.sh --checkpoint_path {out} --text \"A dog barks\"",
            "vae": f"--pretrained_vae {out} (stage 1) or --set model.autoencoder_path={out} (stage 2)",
            "vocoder": f"--vocoder hifigan --vocoder_path {out}"}[args.only]
    print(f"wrote {out}; use it with: {hint}")
    return 0


if __name__ == "__main__":
    run_main(main)
