"""Reconstruction quality of a stage-1 VAE on a prepared split: mel L1/MSE, log-spectral distance,
latent shape and compression ratio. Prints a table and writes <export>/eval_<split>.json.

  python bins/tta/eval_vae.py --vae ckpts/tta/autoencoderkl [--split test] [--processed_dir data/processed]
"""

from __future__ import annotations

from pathlib import Path

from utils.cli import check_number, entry_point_parser, run_main


def main(argv: list[str] | None = None) -> int:
    p = entry_point_parser(__doc__)
    p.add_argument("--vae", required=True, help="stage-1 experiment or export folder")
    p.add_argument("--split", default="test")
    p.add_argument("--processed_dir", help="default: data.processed_dir of the VAE's config")
    p.add_argument("--datasets", nargs="+", help="default: data.datasets of the VAE's config")
    p.add_argument("--limit", type=int, default=256, help="clips to evaluate (0 = all)")
    p.add_argument("--batch_size", type=int, default=16)
    args = p.parse_args(argv)

    import torch
    from tqdm import tqdm

    from evaluation.mel_metrics import mel_metrics
    from models.tta.autoencoderkl.model import image_to_mel, latent_shape, load_vae_export, mel_to_image
    from models.tta.data import MelDataset
    from utils.io import write_json

    check_number("--limit", args.limit, 0)
    check_number("--batch_size", args.batch_size, 1)
    vae, mel_cfg, meta = load_vae_export(args.vae)
    vae.eval()
    data = meta["config"]["data"]
    ds = MelDataset(args.processed_dir or data["processed_dir"], args.datasets or data["datasets"], args.split, mel_cfg)
    idx = ds.clip_indices()
    idx = idx[: args.limit] if args.limit else idx
    sums: dict[str, float] = {}
    with torch.no_grad():
        for k in tqdm(range(0, len(idx), args.batch_size), desc="eval vae", unit="batch"):
            x = torch.stack([ds[i]["mel"] for i in idx[k : k + args.batch_size]])
            x_rec = image_to_mel(vae.decode(vae.encode(mel_to_image(x)).latent_dist.mode()).sample)
            for name, v in mel_metrics(x, x_rec).items():
                sums[name] = sums.get(name, 0.0) + v * len(x)
    result = {k: v / len(idx) for k, v in sums.items()}
    shape = latent_shape(vae, mel_cfg)
    result.update(
        clips=len(idx), split=args.split, mel_shape=[mel_cfg.n_mels, mel_cfg.target_frames], latent_shape=list(shape),
        compression_ratio=mel_cfg.n_mels * mel_cfg.target_frames / (shape[0] * shape[1] * shape[2]),
    )
    write_json(Path(meta["dir"]) / f"eval_{args.split}.json", result)
    print(f"{'metric':<20}value")
    for k, v in result.items():
        print(f"{k:<20}{v:.4f}" if isinstance(v, float) else f"{k:<20}{v}")
    return 0


if __name__ == "__main__":
    run_main(main)
