"""GPU check: VAE and LDM training steps under each mixed precision (fp16 with accelerate's grad scaler, bf16),
a two-step resume of each, and a batch of generation; steps/s and peak memory per run. Exits non-zero on the
first dtype, device or resume error (the error is printed with its traceback: this is a check, not a tool).

  sh bench/gpu_check.sh                        # full size (papers' VAE and U-Net, 10.24 s clips) on the GPU
  sh bench/gpu_check.sh --size tiny --device cpu   # the tests' run: debug configs; fp16 needs a GPU, so bf16 only

Each run trains 2 steps, then resumes to 4 from its checkpoint; the data is a small generated SynthCaps set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZES = {
    "tiny": {"audio": ["audio.segment_seconds=1.28", "audio.target_frames=128"], "batch": 2,
             "vae": "egs/tta/autoencoderkl/exp_config_debug.json", "ldm": "egs/tta/audioldm/exp_config_debug.json"},
    "full": {"audio": ["audio.segment_seconds=10.24", "audio.target_frames=1024"], "batch": 2,
             "vae": "egs/tta/autoencoderkl/exp_config.json", "ldm": "egs/tta/audioldm/exp_config.json"},
}


def peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's high-water mark


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def text_encoder(work: Path, size: str) -> list[str]:
    """An offline text encoder of the config's width: a random T5 with t5-base's shape at full size."""
    sys.path.insert(0, str(ROOT / "tests"))  # the tests' stand-in maker (a random T5 saved as a hub folder)
    from standins import save_standin_t5

    folder = work / f"t5_{size}"
    shape = {"tiny": dict(vocab_size=300), "full": dict(vocab_size=1000, d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64)}
    if not (folder / "config.json").exists():
        save_standin_t5(folder, ROOT.parent / "shared/data/audiocaps/train.csv", **shape[size])
    width = 32 if size == "tiny" else 768
    return [f"text_encoder.name_or_path={folder}", f"unet.cross_attention_dim={width}", "text_encoder.max_length=16"]


def train_and_resume(config: str, exp: str, sets: list[str], device: str) -> dict:
    """2 steps, then --resume to 4; steps/s of the resumed half and the peak memory of both."""
    from bins.tta.train import main as train

    cpu = ["--cpu"] if device == "cpu" else []
    args = ["--config", config, "--exp_name", exp, *cpu, *[f"--set={s}" for s in sets]]
    reset_peak(device)
    assert train([*args, "--set=train.max_steps=2"]) == 0
    t0 = time.perf_counter()
    assert train([*args, "--resume", "--set=train.max_steps=4"]) == 0
    return {"steps_per_s": 2 / (time.perf_counter() - t0), "peak_mb": peak_memory_mb(device)}


def run(size: str, device: str, work: Path, precisions: list[str]) -> list[dict]:
    from bins.tta.preprocess import main as prepare
    from models.tta.audioldm.pipeline import TTAPipeline

    s = SIZES[size]
    data = work / "data"
    if not (data / "SynthCaps" / "train.json").exists():
        assert prepare(["--dataset", "SynthCaps", "--processed_dir", str(data), "--set=preprocess.synthcaps_clips=12",
                        "--set=preprocess.num_workers=1", *[f"--set={a}" for a in s["audio"]]]) == 0
    common = [*s["audio"], f"data.processed_dir={data}", 'data.datasets=["SynthCaps"]', f"output_dir={work / 'ckpts'}",
              f"train.batch_size={s['batch']}", "train.save_every=2", "train.valid_every=2", "train.valid_batches=1",
              "train.sample_every=0"]
    rows = []
    for precision in precisions:
        mp = [f"train.mixed_precision={precision}"]
        vae = train_and_resume(s["vae"], f"vae_{precision}", common + mp + ["model.scale_batches=1"], device)
        rows.append({"check": "VAE train (D+G), 2 steps + resume 2", "precision": precision, **vae})
        ldm_sets = common + mp + text_encoder(work, size) + [f"model.autoencoder_path={work / 'ckpts' / f'vae_{precision}'}",
                                                               "model.valid_samples=0"]
        ldm = train_and_resume(s["ldm"], f"ldm_{precision}", ldm_sets, device)
        rows.append({"check": "LDM train, 2 steps + resume 2", "precision": precision, **ldm})
        reset_peak(device)
        pipe = TTAPipeline.from_experiment(work / "ckpts" / f"ldm_{precision}", device=device)
        t0 = time.perf_counter()
        out = pipe(["A dog barks", "Rain falls on a roof"], num_steps=4, seed=0)
        assert out.wav.isfinite().all() and out.wav.abs().amax() > 0, "generated audio is silent or not finite"
        rows.append({"check": "generate 2 clips, 4 steps", "precision": precision, "steps_per_s": 4 / (time.perf_counter() - t0),
                     "peak_mb": peak_memory_mb(device)})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=list(SIZES), default="full")
    p.add_argument("--device", help="cuda (default when available) or cpu")
    p.add_argument("--workdir", type=Path, help="data, models and results (default: a temporary folder)")
    args = p.parse_args()
    import tempfile

    import torch

    from utils.cli import quiet_libraries

    quiet_libraries()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precisions = ["fp16", "bf16"] if device.startswith("cuda") else ["bf16"]  # fp16 autocast needs a GPU
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tta_gpu_check_"))
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    try:
        rows = run(args.size, device, work, precisions)
    except Exception:  # noqa: BLE001 - a check: any failure is reported and fails the run
        traceback.print_exc()
        print(f"gpu check FAILED on {name} ({args.size})", file=sys.stderr)
        return 1
    print(f"\ngpu check on {name}, size {args.size}")
    print(f"{'check':<40}{'precision':<11}{'steps/s':>9}{'peak MB':>10}")
    for r in rows:
        print(f"{r['check']:<40}{r['precision']:<11}{r['steps_per_s']:>9.2f}{r['peak_mb']:>10.0f}")
    (work / "gpu_check.json").write_text(json.dumps({"device": name, "size": args.size, "rows": rows}, indent=2))
    print(f"wrote {work / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
