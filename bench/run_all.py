"""One benchmark command, one table: training throughput, sampling speed, memory and arithmetic efficiency.

  python bench/run_all.py                 # demo and full (AudioCaps / Amphion) sizes, CPU
  python bench/run_all.py --sizes demo    # quick
  python bench/run_all.py --cases vae ldm --sizes full

Every case runs in a fresh process (its peak RSS is that case's peak memory) on a small generated
SynthCaps corpus at the size's clip length, through the real trainer, tasks and pipeline. Rows marked
"est." extrapolate a measured per-step time to the full step count (e.g. DDIM 200 at full size on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZES = {
    "demo": {"audio": ["audio.segment_seconds=2.56", "audio.target_frames=256"], "vae": "egs/tta/autoencoderkl/exp_config_synthcaps.json",
             "ldm": "egs/tta/audioldm/exp_config_synthcaps.json", "hifigan": "egs/tta/hifigan/exp_config_synthcaps.json", "batch": 16, "steps": 4},
    "full": {"audio": ["audio.segment_seconds=10.24", "audio.target_frames=1024"], "vae": "egs/tta/autoencoderkl/exp_config.json",
             "ldm": "egs/tta/audioldm/exp_config.json", "hifigan": "egs/tta/hifigan/exp_config.json", "batch": 2, "steps": 2},
}
CASES = ("prepare", "matmul", "vae", "ldm", "ldm_options", "sample", "hifigan", "finetune", "lora", "editing", "frechet")
UNSIZED = ("matmul", "frechet")  # cases that do not depend on the model size
DEMO_EXP = Path(os.environ.get("TTA_DEMO_EXP", ROOT / "ckpts/tta/audioldm_synthcaps"))  # the trained demo (sh egs/tta/demo/run.sh)
LORA = 'train.lora={rank: 16, alpha: 16, target_modules: ["to_q", "to_k", "to_v", "to_out.0"]}'  # exp_config_lora.json's


def row(case: str, size: str, setting: str, value: float, unit: str) -> dict:
    return {"case": case, "size": size, "setting": setting, "value": value, "unit": unit}


def timed(fn, steps: int) -> float:
    """Seconds per call after one warm-up call."""
    fn(0)
    t0 = time.perf_counter()
    for i in range(steps):
        fn(i + 1)
    return (time.perf_counter() - t0) / steps


def synthcaps_corpus(out: Path, audio_sets: list[str], clips: int) -> Path:
    """A small generated SynthCaps corpus under `out` with these audio settings, made once."""
    from bins.tta.preprocess import main as prepare

    if not (out / "SynthCaps" / "train.json").exists():
        sets = [f"--set={s}" for s in audio_sets + [f"preprocess.synthcaps_clips={clips}", "preprocess.num_workers=1"]]
        prepare(["--dataset", "SynthCaps", "--processed_dir", str(out), *sets])
    return out


def corpus(work: Path, size: str, clips: int = 24) -> Path:
    return synthcaps_corpus(work / f"data_{size}", SIZES[size]["audio"], clips)


def common_sets(work: Path, size: str, batch: int) -> list[str]:
    return [*SIZES[size]["audio"], f"data.processed_dir={corpus(work, size)}", 'data.datasets=["SynthCaps"]',
            f"output_dir={work / ('ckpts_' + size)}", f"train.batch_size={batch}", "train.mixed_precision=no"]


def vae_export(work: Path, size: str) -> Path:
    from models.base.trainer import Trainer
    from models.tta.autoencoderkl.task import AutoencoderKLTask
    from utils.config import load_config

    exp = work / f"ckpts_{size}" / "vae"
    if not (exp / "export" / "tta_artifact.json").exists():
        cfg, res = load_config(SIZES[size]["vae"], AutoencoderKLTask.Config, common_sets(work, size, 2) + ["train.max_steps=0", "model.scale_batches=1"])
        Trainer(AutoencoderKLTask, cfg, res, "vae").run()
    return exp


def full_size_t5(work: Path) -> Path:
    """A randomly initialised encoder with t5-base's dimensions (768-d, 12 layers) standing in for t5-base."""
    sys.path.insert(0, str(ROOT / "tests"))  # the tests' stand-in maker (a random T5 saved as a hub folder)
    from standins import save_standin_t5

    folder = work / "t5_base_shape"
    if not (folder / "config.json").exists():
        save_standin_t5(folder, ROOT.parent / "shared/data/audiocaps/train.csv", vocab_size=1000, d_model=768, d_ff=3072,
                        num_layers=12, num_heads=12, d_kv=64)
    return folder


def ldm_sets(work: Path, size: str) -> list[str]:
    sets = common_sets(work, size, SIZES[size]["batch"]) + [f"model.autoencoder_path={vae_export(work, size)}", "model.valid_samples=0"]
    if size == "full":
        sets += [f"text_encoder.name_or_path={full_size_t5(work)}", "text_encoder.max_length=16"]
    return sets


# ---- cases ---------------------------------------------------------------------------------------

def case_prepare(work: Path, size: str) -> list[dict]:
    from bins.tta.preprocess import main as prepare

    rows = []
    warm = [f"--set={s}" for s in SIZES[size]["audio"] + ["preprocess.synthcaps_clips=8", "preprocess.num_workers=1"]]
    prepare(["--dataset", "SynthCaps", "--processed_dir", str(work / f"prep_{size}_warmup"), *warm])  # imports, JIT
    for workers in (1, 2):
        out = work / f"prep_{size}_{workers}"
        sets = [f"--set={s}" for s in SIZES[size]["audio"] + ["preprocess.synthcaps_clips=120", f"preprocess.num_workers={workers}"]]
        t0 = time.perf_counter()
        prepare(["--dataset", "SynthCaps", "--processed_dir", str(out), *sets])
        rows.append(row("prepare SynthCaps", size, f"{workers} worker(s)", 120 / (time.perf_counter() - t0), "clips/s"))
    return rows


def case_matmul(work: Path, size: str) -> list[dict]:
    import torch

    from utils.machine import matmul_gflops

    return [row("matmul fp32 2048^2 (ceiling)", "-", f"{torch.get_num_threads()} threads", matmul_gflops(), "GFLOP/s")]


def case_frechet(work: Path, size: str) -> list[dict]:
    """The Frechet distance of PANNs-sized embeddings (2048-d, 957 clips: AudioCaps test's count) against the
    reference tools' formula, scipy's sqrtm of the covariance product, on the same random embeddings."""
    import numpy as np
    import scipy.linalg

    from evaluation.distribution import frechet_distance

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((957, 2048)) @ rng.standard_normal((2048, 2048)) * 0.05 for _ in range(2))

    def reference(_: int) -> None:
        scipy.linalg.sqrtm(np.cov(a, rowvar=False) @ np.cov(b, rowvar=False))

    return [row("frechet distance 2048-d", "-", "symmetric eigh (ours)", timed(lambda _: frechet_distance(a, b), 2), "s"),
            row("frechet distance 2048-d", "-", "scipy sqrtm (audioldm-eval)", timed(reference, 1), "s")]


def case_vae(work: Path, size: str) -> list[dict]:
    from models.base.trainer import Trainer
    from models.tta.autoencoderkl.task import AutoencoderKLTask
    from utils.config import load_config

    batch_size, steps = SIZES[size]["batch"], SIZES[size]["steps"]
    sets = common_sets(work, size, batch_size) + ["loss.disc_start=0"]
    frames = load_config(SIZES[size]["vae"], AutoencoderKLTask.Config, sets)[0].audio.target_frames
    rows = []
    for crop in (None, frames // 2):  # whole clips, and the half-length random crops `model.train_crop_frames` trains on
        cfg, res = load_config(SIZES[size]["vae"], AutoencoderKLTask.Config, sets + [f"model.train_crop_frames={crop or 'null'}"])
        trainer = Trainer(AutoencoderKLTask, cfg, res, f"bench_vae_{crop or 'whole'}")
        batch = next(iter(trainer.train_dl))
        sec = timed(lambda i: trainer.task.train_step(batch, 10 + i), steps)
        setting = f"batch {batch_size}, " + (f"crops of {crop} frames" if crop else f"whole clips ({frames} frames)")
        rows += [row("VAE train step (D+G)", size, setting, sec, "s/step"),
                 row("VAE train step (D+G)", size, setting, batch_size / sec, "samples/s")]
    return rows


def flop_counter():
    """torch's FLOP counter, taught the CPU flash-attention kernels (torch 2.13 counts only the GPU ones), so an
    achieved GFLOP/s includes attention's matrix products instead of charging their time to the convolutions'."""
    import torch
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    if aten._scaled_dot_product_flash_attention_for_cpu not in fc.flop_registry:
        @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu, get_raw=True)
        def _forward(query, key, value, *args, out_val=None, **kwargs) -> int:
            return fc.sdpa_flop_count(query.shape, key.shape, value.shape)

        @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward, get_raw=True)
        def _backward(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
            return fc.sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)
    return fc.FlopCounterMode(display=False)


def case_ldm(work: Path, size: str) -> list[dict]:
    from models.base.trainer import Trainer
    from models.tta.audioldm.task import AudioLDMTask
    from utils.config import load_config

    batch_size, steps = SIZES[size]["batch"], SIZES[size]["steps"]
    rows = []
    for cached in (True, False):
        cfg, res = load_config(SIZES[size]["ldm"], AudioLDMTask.Config, ldm_sets(work, size) + [f"model.cache_latents={str(cached).lower()}"])
        trainer = Trainer(AudioLDMTask, cfg, res, f"bench_ldm_{cached}")
        task, batch = trainer.task, next(iter(trainer.train_dl))

        def step(i: int) -> None:
            if not cached:
                task.text._cache.clear()  # no caption-embedding cache either
            task.train_step(batch, i)

        sec = timed(step, steps)
        label = "latents+text cached" if cached else "VAE+text encoder every step"
        rows += [row("LDM train step", size, f"batch {batch_size}, {label}", sec, "s/step"),
                 row("LDM train step", size, f"batch {batch_size}, {label}", batch_size / sec, "samples/s")]
        if cached:
            from utils.machine import matmul_gflops

            with flop_counter() as counter:
                task.train_step(batch, 99)
            achieved = counter.get_total_flops() / sec / 1e9
            rows += [row("LDM train step achieved", size, "U-Net fwd+bwd FLOPs (attention included) / step time", achieved, "GFLOP/s"),
                     row("LDM train step achieved", size, "share of the matmul ceiling measured right after", 100 * achieved / matmul_gflops(), "%")]
    return rows


def case_ldm_options(work: Path, size: str) -> list[dict]:
    """One U-Net training step (forward, backward, Adam) under each speed option, same weights and batch."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from models.base.trainer import Trainer
    from models.tta.audioldm.model import text_condition
    from models.tta.audioldm.task import AudioLDMTask
    from models.tta.autoencoderkl.model import downsample_factor
    from utils.config import load_config

    batch_size, steps = SIZES[size]["batch"], SIZES[size]["steps"]
    cfg, res = load_config(SIZES[size]["ldm"], AudioLDMTask.Config, ldm_sets(work, size) + ["model.cache_latents=true"])
    task = Trainer(AudioLDMTask, cfg, res, "bench_ldm_options").task
    unet = task.unwrap("unet")
    optimizers = {"fused": task.optimizers["unet"],  # the trainer's own
                  "loop": torch.optim.AdamW(unet.parameters(), lr=cfg.train.learning_rate)}  # torch's default on CPUs
    gen = torch.Generator().manual_seed(0)
    f = downsample_factor(task.vae)
    shape = (batch_size, unet.config.in_channels, cfg.audio.target_frames // f, cfg.audio.n_mels // f)
    z, t = torch.randn(shape, generator=gen), torch.randint(0, 1000, (batch_size,), generator=gen)
    emb, mask = task.text.encode(["A dog barks and a man speaks"] * batch_size)
    cond = text_condition(unet, emb, mask)

    def step(_: int, channels_last: bool, opt: torch.optim.Optimizer) -> None:
        x = z.contiguous(memory_format=torch.channels_last) if channels_last else z
        unet(x, t, **cond).sample.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    rows = []
    options = [("SDPA attention (default)", AttnProcessor2_0, False, False, "fused"),
               ("classic attention (no SDPA)", AttnProcessor, False, False, "fused"),
               ("SDPA + channels_last", AttnProcessor2_0, True, False, "fused"),
               ("SDPA + gradient checkpointing", AttnProcessor2_0, False, True, "fused"),
               ("SDPA + AdamW as a per-parameter loop (torch's CPU default)", AttnProcessor2_0, False, False, "loop")]
    if size == "full":  # classic attention keeps [B*heads, 4096, 4096] scores per layer: killed for memory at 24 GB
        options = [o for o in options if o[1] is not AttnProcessor]
    for label, proc, channels_last, ckpt, adam in options:
        unet.set_attn_processor(proc())
        unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        unet.enable_gradient_checkpointing() if ckpt else unet.disable_gradient_checkpointing()
        sec = timed(lambda i: step(i, channels_last, optimizers[adam]), steps)
        rows.append(row("LDM U-Net step option", size, f"batch {batch_size}, {label}", sec, "s/step"))
    return rows


def case_sample(work: Path, size: str) -> list[dict]:
    from models.base.trainer import Trainer
    from models.tta.audioldm.pipeline import TTAPipeline
    from models.tta.audioldm.task import AudioLDMTask
    from utils.config import load_config

    cfg, res = load_config(SIZES[size]["ldm"], AudioLDMTask.Config, ldm_sets(work, size) + ["train.max_steps=0"])
    exp = Trainer(AudioLDMTask, cfg, res, "bench_sampler").run().parent
    pipe = TTAPipeline.from_experiment(exp)
    rows = []
    settings = [("ddim", 200), ("dpm++", 25), ("dpm++", 10)]
    for sampler, steps in settings:
        run_steps = steps if size == "demo" or steps <= 10 else 3
        pipe(["A dog barks"], sampler=sampler, num_steps=2, duration=10.24)  # warm-up
        out = pipe(["A dog barks"], sampler=sampler, num_steps=run_steps, duration=10.24, seed=0)
        t = dict(out.timings)
        t["diffusion"] *= steps / run_steps
        total = sum(t.values())
        est = "" if run_steps == steps else " (est.)"
        parts = " + ".join(f"{k} {v:.2f}" for k, v in t.items())
        rows.append(row("generate 10.24 s", size, f"{sampler} {steps}, CFG, GL: {parts}{est}", total, "s"))
        rows.append(row("real-time factor", size, f"{sampler} {steps} steps{est}", total / out.seconds, "x (lower is faster)"))
    return rows


def case_hifigan(work: Path, size: str) -> list[dict]:
    from models.base.trainer import Trainer
    from models.vocoder.task import HiFiGANTask
    from utils.config import load_config

    batch_size, steps = SIZES[size]["batch"], SIZES[size]["steps"]
    cfg, res = load_config(SIZES[size]["hifigan"], HiFiGANTask.Config, common_sets(work, size, batch_size) + ["loss.disc_start=0"])
    trainer = Trainer(HiFiGANTask, cfg, res, "bench_hifigan")
    batch = next(iter(trainer.train_dl))
    sec = timed(lambda i: trainer.task.train_step(batch, 10 + i), steps)
    seg = cfg.segment_frames * cfg.audio.hop_length / cfg.audio.sample_rate
    return [row("HiFi-GAN train step (D+G)", size, f"batch {batch_size} x {seg:.2f} s", batch_size / sec, "samples/s")]


def ldm_export(work: Path, size: str) -> Path:
    """A stage-2 export of the size's LDM config (untrained: speed and memory do not depend on the weights)."""
    from models.base.trainer import Trainer
    from models.tta.audioldm.task import AudioLDMTask
    from utils.config import load_config

    exp = work / f"ckpts_{size}" / "ldm_base"
    if not (exp / "export" / "tta_artifact.json").exists():
        cfg, res = load_config(SIZES[size]["ldm"], AudioLDMTask.Config, ldm_sets(work, size) + ["train.max_steps=0", "model.cache_latents=true"])
        Trainer(AudioLDMTask, cfg, res, "ldm_base").run()
    return exp


def fine_tune_rows(work: Path, size: str, lora: bool) -> list[dict]:
    from models.base.trainer import Trainer
    from models.tta.audioldm.task import AudioLDMTask
    from utils.config import load_config

    batch_size, steps = SIZES[size]["batch"], SIZES[size]["steps"]
    sets = ldm_sets(work, size) + [f"model.init_from={ldm_export(work, size)}", "model.cache_latents=true"] + ([LORA] if lora else [])
    cfg, res = load_config(SIZES[size]["ldm"], AudioLDMTask.Config, sets)
    trainer = Trainer(AudioLDMTask, cfg, res, f"bench_{'lora' if lora else 'finetune'}")
    batch = next(iter(trainer.train_dl))
    sec = timed(lambda i: trainer.task.train_step(batch, i), steps)
    unet = trainer.task.unwrap("unet")
    trained = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    label = "LoRA rank 16 (exp_config_lora)" if lora else "whole U-Net"
    rows = [row("LDM fine-tune step", size, f"batch {batch_size}, {label}", sec, "s/step"),
            row("LDM fine-tune trained params", size, label, trained / 1e6, "M parameters")]
    if lora:
        trainer.task.export(work / f"lora_{size}", res)
        rows.append(row("LoRA adapter file", size, label, (work / f"lora_{size}" / "adapter.safetensors").stat().st_size / 2**20, "MiB"))
    return rows


def case_finetune(work: Path, size: str) -> list[dict]:
    return fine_tune_rows(work, size, lora=False)


def case_lora(work: Path, size: str) -> list[dict]:
    return fine_tune_rows(work, size, lora=True)


def case_editing(work: Path, size: str) -> list[dict]:
    """Zero-shot edits of the trained demo model on 60 held-out test clips (demo size only)."""
    if size != "demo":
        return []
    from evaluation.editing import Clip, EditingBench
    from models.tta.audioldm.pipeline import TTAPipeline
    from preprocessors.synthcaps import Attributes
    from utils.audio import load_audio
    from utils.io import read_json

    if not (DEMO_EXP / "export").is_dir():
        raise SystemExit(f"error: no trained demo at {DEMO_EXP}; run sh egs/tta/demo/run.sh (or set TTA_DEMO_EXP)")
    pipe = TTAPipeline.from_experiment(DEMO_EXP)
    data = ROOT / read_json(DEMO_EXP / "config.json")["data"]["processed_dir"] / "SynthCaps"
    test = read_json(data / "test.json")[:60]
    clips = [Clip(load_audio(data / "wav" / f"{r['Uid']}.wav", pipe.mel_cfg.sample_rate), Attributes(**r["Attributes"]), r["Caption"]) for r in test]
    bench = EditingBench(pipe, clips)
    rows = []
    for r in bench.audio_to_audio():
        s = f"strength {r['strength']}" if r["strength"] > 0.01 else "VAE round trip (no step)"
        rows += [row("edit audio-to-audio", size, f"{s}: pitch became the target", r["pitch_to_target"], "%"),
                 row("edit audio-to-audio", size, f"{s}: type and pattern kept", r["type_and_pattern_kept"], "%"),
                 row("edit audio-to-audio", size, f"{s}: time per clip", r["seconds_per_clip"], "s")]
    for r in bench.audio_to_audio(invert=True):  # --source_prompt: the clip inverted with its own caption
        s = f"inverted, strength {r['strength']}"
        rows += [row("edit audio-to-audio", size, f"{s}: pitch became the target", r["pitch_to_target"], "%"),
                 row("edit audio-to-audio", size, f"{s}: type and pattern kept", r["type_and_pattern_kept"], "%"),
                 row("edit audio-to-audio", size, f"{s}: time per clip", r["seconds_per_clip"], "s")]
    r = bench.inpainting()
    rows += [row("edit inpainting", size, f"{r['span_s'][0]:.2f}-{r['span_s'][1]:.2f} s as another type: type in span", r["type_in_span"], "%"),
             row("edit inpainting", size, "mel L1 outside the span / VAE round trip's", r["ratio"], "x"),
             row("edit inpainting", size, "time per clip", r["seconds_per_clip"], "s")]
    r = bench.continuation()
    named = {"all": "all 3 attributes", "sound_type": "sound type", "pitch": "pitch", "pattern": "pattern"}
    rows += [row("edit continuation", size, f"plain generation 2.56 s: {name}", r["plain_adherence"][key], "%") for key, name in named.items()]
    rows += [row("edit continuation", size, f"2.56 s -> 10.24 s, window {k + 2}: {name}", a[key], "%")
             for k, a in enumerate(r["window_adherence"]) for key, name in named.items()]
    rows += [row("edit continuation", size, "largest jump at joins / largest elsewhere: median clip", r["join_jump_ratio_median"], "x"),
             row("edit continuation", size, "largest jump at joins / largest elsewhere: worst clip", r["join_jump_ratio_max"], "x"),
             row("edit continuation", size, "clips whose largest jump is at a join", r["clips_with_a_larger_jump_at_a_join"], "%"),
             row("edit continuation", size, "time per clip (10.24 s)", r["seconds_per_clip"], "s"),
             row("edit continuation", size, "plain generation time per clip (2.56 s)", r["plain_seconds_per_clip"], "s")]
    return rows


# ---- driver --------------------------------------------------------------------------------------

def worker(case: str, size: str, work: Path) -> None:
    import torch

    from utils.cli import quiet_libraries

    quiet_libraries()
    torch.manual_seed(0)
    rows = globals()[f"case_{case}"](work, size)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in rows:
        r["peak_rss_mb"] = peak
    print("BENCH_ROWS " + json.dumps(rows), flush=True)


def main() -> int:
    from utils.cli import entry_point_parser

    p = entry_point_parser(__doc__)
    p.add_argument("--sizes", nargs="+", default=["demo", "full"], choices=list(SIZES))
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--workdir", type=Path, help="keep generated data/models here (default: a temp folder)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    p.add_argument("--worker", nargs=2, metavar=("CASE", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tta_bench_"))
    if args.worker:
        worker(args.worker[0], args.worker[1], work)
        return 0
    rows = []
    for case in args.cases:
        for size in (["-"] if case in UNSIZED else args.sizes):
            print(f"running {case} ({size}) ...", file=sys.stderr, flush=True)
            res = subprocess.run([sys.executable, __file__, "--worker", case, size if size != "-" else "demo", "--workdir", str(work)],
                                 capture_output=True, text=True)
            lines = [l for l in res.stdout.splitlines() if l.startswith("BENCH_ROWS ")]
            if res.returncode != 0 or not lines:
                errors = [line for line in res.stderr.splitlines() if "Error" in line or line.startswith("error")]
                print(f"  failed: {(errors or res.stderr.strip().splitlines() or [res.returncode])[-1]}", file=sys.stderr)
                continue
            rows += json.loads(lines[-1][len("BENCH_ROWS "):])
    width = max([len(r["setting"]) for r in rows] + [7]) + 1
    print(f"\n{'case':<30}{'size':<6}{'setting':<{width}}{'value':>10}  {'unit':<20}{'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['case']:<30}{r['size']:<6}{r['setting']:<{width}}{r['value']:>10.3f}  {r['unit']:<20}{r['peak_rss_mb']:>12.0f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
