"""Train a stage: the VAE (AutoencoderKL), the latent diffusion model (AudioLDM), the vocoder (HiFiGAN) or the
instruction editor (AUDIT).

The config's `model_type` picks the task. Outputs go to <output_dir>/<exp_name>/: config.json (resolved),
checkpoints/, logs/ (TensorBoard), metrics.jsonl and export/ (the inference artifact).
Multi-process: `accelerate launch --multi_gpu --num_processes N bins/tta/train.py ...`, or torchrun.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import add_config_args, check_output_dir, entry_point_parser, run_main
from utils.config import ConfigError, load_config, load_raw


def task_registry() -> dict:
    """model_type -> Task class. Imported here, not at the top, so `--help` answers without loading torch;
    a broken import inside a task is raised as it is, not hidden as an unknown model_type."""
    from models.tta.audioldm.task import AudioLDMTask
    from models.tta.audit.task import AuditTask
    from models.tta.autoencoderkl.task import AutoencoderKLTask
    from models.vocoder.task import HiFiGANTask

    return {"AutoencoderKL": AutoencoderKLTask, "AudioLDM": AudioLDMTask, "HiFiGAN": HiFiGANTask, "AUDIT": AuditTask}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = entry_point_parser(__doc__)
    add_config_args(p, None)
    p.add_argument("--exp_name", required=True, help="experiment folder name under output_dir")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of this experiment")
    p.add_argument("--pretrained_vae", help="AutoencoderKL only: a diffusers VAE folder to start from (sets model.pretrained_path)")
    p.add_argument("--cache_latents", action="store_true", help="AudioLDM / AUDIT: encode latents once and train from the cache")
    p.add_argument("--init_from", help="AudioLDM / AUDIT: start from a stage-2 export (ours or converted): sets model.init_from")
    p.add_argument("--cpu", action="store_true", help="force CPU even when a GPU is visible")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.exp_name.strip() or args.exp_name in (".", "..") or any(c in args.exp_name for c in "/\\"):
        raise ConfigError(f"--exp_name {args.exp_name!r} must be a plain folder name (no '/' or '..'): "
                          "it becomes <output_dir>/<exp_name>")
    raw, _ = load_raw(args.config)
    registry = task_registry()
    model_type = raw.get("model_type")
    if model_type not in registry:
        raise ConfigError(f"{args.config}: model_type {model_type!r} is not one of {sorted(registry)}")
    task_cls = registry[model_type]
    overrides = list(args.overrides)
    if args.pretrained_vae:
        if model_type != "AutoencoderKL":
            raise ConfigError("--pretrained_vae applies to AutoencoderKL configs only")
        overrides.append(f"model.pretrained_path={args.pretrained_vae}")
    if args.init_from:
        if model_type not in ("AudioLDM", "AUDIT"):
            raise ConfigError("--init_from applies to AudioLDM and AUDIT configs only")
        overrides.append(f"model.init_from={args.init_from}")
    if args.cache_latents:
        if model_type not in ("AudioLDM", "AUDIT"):
            raise ConfigError("--cache_latents applies to AudioLDM and AUDIT configs only")
        overrides.append("model.cache_latents=true")
    cfg, resolved = load_config(args.config, task_cls.Config, overrides)
    check_output_dir("output_dir", Path(cfg.output_dir) / args.exp_name)

    from models.base.trainer import Trainer

    trainer = Trainer(task_cls, cfg, resolved, args.exp_name, resume=args.resume, cpu=True if args.cpu else None)
    export = trainer.run()
    if trainer.accelerator.is_main_process:
        print(f"done: step {trainer.step}; export in {export}")
    return 0


if __name__ == "__main__":
    run_main(main)
