"""Per-op profile of one training step (torch.profiler), to see where a VAE+GAN iteration or a U-Net step spends
its time before changing anything.

  python bench/profile_step.py --stage vae --size demo
  python bench/profile_step.py --stage ldm --size full --rows 30

Same setup as bench/run_all.py's vae / ldm cases (real trainer and task on a small generated corpus); two warm-up
steps, then one profiled step. Prints the ops sorted by their own CPU time and the share of matrix products
(convolutions and matmuls) in the step.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import SIZES, common_sets, ldm_sets  # noqa: E402  (bench/ is not a package)

MATRIX_OPS = ("conv", "mm", "bmm", "addmm", "linear", "scaled_dot_product", "matmul", "baddbmm")


def make_step(stage: str, size: str, work: Path):
    from models.base.trainer import Trainer
    from utils.config import load_config

    if stage == "vae":
        from models.tta.autoencoderkl.task import AutoencoderKLTask as Task
        sets = common_sets(work, size, SIZES[size]["batch"]) + ["loss.disc_start=0"]
    else:
        from models.tta.audioldm.task import AudioLDMTask as Task
        sets = ldm_sets(work, size) + ["model.cache_latents=true"]
    cfg, res = load_config(SIZES[size][stage], Task.Config, sets)
    trainer = Trainer(Task, cfg, res, f"profile_{stage}")
    batch = next(iter(trainer.train_dl))
    return lambda i: trainer.task.train_step(batch, 10 + i)


def main() -> int:
    from utils.cli import entry_point_parser

    p = entry_point_parser(__doc__)
    p.add_argument("--stage", choices=("vae", "ldm"), required=True)
    p.add_argument("--size", choices=list(SIZES), default="demo")
    p.add_argument("--rows", type=int, default=25, help="ops to list")
    p.add_argument("--workdir", type=Path, help="keep generated data/models here (default: a temp folder)")
    args = p.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from utils.cli import quiet_libraries

    quiet_libraries()
    torch.manual_seed(0)
    step = make_step(args.stage, args.size, args.workdir or Path(tempfile.mkdtemp(prefix="tta_profile_")))
    step(0), step(1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(2)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(e.self_cpu_time_total for e in events)
    matrix = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in MATRIX_OPS))
    print(f"step {total / 1e6:.3f} s of op time, matrix products {matrix / total:.0%} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
