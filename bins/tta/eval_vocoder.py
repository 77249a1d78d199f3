"""Vocoder quality on a prepared split: re-analyse each vocoder's output with the shared front-end and compare
with the input mel (mel L1, MSE, log-spectral distance). HiFi-GAN and Griffin-Lim side by side.

  python bins/tta/eval_vocoder.py --processed_dir data/processed --dataset SynthCaps [--hifigan ckpts/tta/hifigan]
"""

from __future__ import annotations

import time
from pathlib import Path

from utils.cli import check_number, entry_point_parser, run_main


def main(argv: list[str] | None = None) -> int:
    p = entry_point_parser(__doc__)
    p.add_argument("--processed_dir", type=Path, default=Path("data/processed"))
    p.add_argument("--dataset", default="SynthCaps")
    p.add_argument("--split", default="test")
    p.add_argument("--hifigan", help="HiFi-GAN folder or experiment (omit to evaluate Griffin-Lim only)")
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=8)
    args = p.parse_args(argv)

    import torch

    from evaluation.mel_metrics import mel_metrics
    from models.tta.data import MelDataset
    from models.vocoder import load_vocoder
    from utils.io import read_json
    from utils.mel import MelConfig, MelFrontEnd

    check_number("--limit", args.limit, 1)
    check_number("--batch_size", args.batch_size, 1)
    stamp = args.processed_dir / args.dataset / "mel" / "mel_config.json"
    if not stamp.exists():
        from utils.errors import UserError

        raise UserError(f"{stamp} not found; prepare {args.dataset} first")
    mel_cfg = MelConfig(**read_json(stamp)["audio"])
    ds = MelDataset(args.processed_dir, [args.dataset], args.split, mel_cfg)
    idx = ds.clip_indices()[: args.limit]
    front = MelFrontEnd(mel_cfg)
    vocoders = {"griffinlim": load_vocoder("griffinlim", None, mel_cfg)}
    if args.hifigan:
        vocoders["hifigan"] = load_vocoder("hifigan", args.hifigan, mel_cfg)
    print(f"{'vocoder':<12}{'mel_l1':>9}{'mel_mse':>9}{'lsd_db':>9}{'x realtime':>12}")
    for name, voc in vocoders.items():
        sums, seconds, audio = {}, 0.0, 0.0
        for k in range(0, len(idx), args.batch_size):
            mel = torch.stack([ds[i]["mel"] for i in idx[k : k + args.batch_size]])
            t0 = time.time()
            with torch.no_grad():
                wav = voc(mel)
            seconds += time.time() - t0
            audio += wav.shape[0] * wav.shape[1] / mel_cfg.sample_rate
            again = front(wav)[..., : mel.shape[-1]]
            for m, v in mel_metrics(mel, again).items():
                sums[m] = sums.get(m, 0.0) + v * len(mel)
        r = {m: v / len(idx) for m, v in sums.items()}
        print(f"{name:<12}{r['mel_l1']:>9.3f}{r['mel_mse']:>9.3f}{r['lsd_db']:>9.2f}{audio / seconds:>12.1f}")
    return 0


if __name__ == "__main__":
    run_main(main)
