"""GPU check: VAE and LDM training steps under each mixed precision (fp16 with accelerate's grad scaler, bf16),
a resume of each from its step-2 checkpoint, and a batch of generation; steps/s and peak memory per run. Exits non-zero on the
first dtype, device or resume error (the error is printed with its traceback: this is a check, not a tool).

  sh bench/gpu_check.sh                        # full size (papers' VAE and U-Net, 10.24 s clips) on the GPU
  sh bench/gpu_check.sh --size tiny --device cpu   # the tests' run: debug configs; fp16 needs a GPU, so bf16 only

Each run trains 2 steps, then resumes to 3 x W steps (W = 10 full, 2 tiny) and reports the trainer's steps/s over
the last W (no warm-up, validation or saving inside); generation is timed after a warm-up call. The data is a small
generated SynthCaps set.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's packages, also with a bare python3 on a GPU machine
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZES = {
    "tiny": {"audio": ["audio.segment_seconds=1.28", "audio.target_frames=128"], "batch": 2, "window": 2, "gen_steps": 4,
             "vae": "egs/tta/autoencoderkl/exp_config_debug.json", "ldm": "egs/tta/audioldm/exp_config_debug.json"},
    "full": {"audio": ["audio.segment_seconds=10.24", "audio.target_frames=1024"], "batch": 2, "window": 10, "gen_steps": 25,
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


def train_and_resume(config: str, exp_dir: Path, sets: list[str], device: str, window: int) -> dict:
    """2 steps and a checkpoint, then --resume to 3 * window steps logging every `window` steps: steps/s is the
    trainer's own rate over the last window (warm-up, validation and saving fall outside it); peak memory covers both."""
    from bins.tta.train import main as train

    cpu = ["--cpu"] if device == "cpu" else []
    args = ["--config", config, "--exp_name", exp_dir.name, *cpu, *[f"--set={s}" for s in sets]]
    reset_peak(device)
    assert train([*args, "--set=train.max_steps=2", "--set=train.save_every=2", "--set=train.valid_every=2"]) == 0
    last = 3 * window
    assert train([*args, "--resume", f"--set=train.max_steps={last}", f"--set=train.log_every={window}",
                  f"--set=train.save_every={last}", f"--set=train.valid_every={last}"]) == 0
    logged = [json.loads(line) for line in (exp_dir / "metrics.jsonl").read_text().splitlines()]
    rate = [m["steps_per_s"] for m in logged if m["split"] == "train" and m["step"] == last][-1]
    return {"steps_per_s": rate, "peak_mb": peak_memory_mb(device), "steps": last}


def run(size: str, device: str, work: Path, precisions: list[str]) -> list[dict]:
    from bins.tta.preprocess import main as prepare
    from models.tta.audioldm.pipeline import TTAPipeline

    s = SIZES[size]
    data = work / "data"
    if not (data / "SynthCaps" / "train.json").exists():
        assert prepare(["--dataset", "SynthCaps", "--processed_dir", str(data), "--set=preprocess.synthcaps_clips=12",
                        "--set=preprocess.num_workers=1", *[f"--set={a}" for a in s["audio"]]]) == 0
    common = [*s["audio"], f"data.processed_dir={data}", 'data.datasets=["SynthCaps"]', f"output_dir={work / 'ckpts'}",
              f"train.batch_size={s['batch']}", "train.valid_batches=1", "train.sample_every=0"]
    rows = []
    for precision in precisions:
        mp = [f"train.mixed_precision={precision}"]
        vae = train_and_resume(s["vae"], work / "ckpts" / f"vae_{precision}", common + mp + ["model.scale_batches=1"], device, s["window"])
        rows.append({"check": "VAE train (D+G), 2 + resume", "precision": precision, **vae})
        ldm_sets = common + mp + text_encoder(work, size) + [f"model.autoencoder_path={work / 'ckpts' / f'vae_{precision}'}",
                                                               "model.valid_samples=0"]
        ldm = train_and_resume(s["ldm"], work / "ckpts" / f"ldm_{precision}", ldm_sets, device, s["window"])
        rows.append({"check": "LDM train, 2 + resume", "precision": precision, **ldm})
    # The pipeline generates in fp32 whatever precision trained the model: one row, from the last run's export.
    pipe = TTAPipeline.from_experiment(work / "ckpts" / f"ldm_{precisions[-1]}", device=device)
    prompts = ["A dog barks", "Rain falls on a roof"]
    pipe(prompts, num_steps=2, seed=0)  # warm-up: kernel selection and allocation fall outside the timing
    reset_peak(device)
    t0 = time.perf_counter()
    out = pipe(prompts, num_steps=s["gen_steps"], seed=0)
    assert out.wav.isfinite().all() and out.wav.abs().amax() > 0, "generated audio is silent or not finite"
    rows.append({"check": f"generate {len(prompts)} clips (dpm++, CFG)", "precision": "fp32", "steps": s["gen_steps"],
                 "steps_per_s": s["gen_steps"] / (time.perf_counter() - t0), "peak_mb": peak_memory_mb(device)})
    return rows


def main() -> int:
    from utils.cli import entry_point_parser

    p = entry_point_parser(__doc__)
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
    print(f"{'check':<32}{'precision':<11}{'steps':>6}{'steps/s':>9}{'peak MB':>10}")
    for r in rows:
        print(f"{r['check']:<32}{r['precision']:<11}{r['steps']:>6}{r['steps_per_s']:>9.2f}{r['peak_mb']:>10.0f}")
    (work / "gpu_check.json").write_text(json.dumps({"device": name, "size": args.size, "rows": rows}, indent=2))
    print(f"wrote {work / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
