"""A web page to try, compare and share models: Generate and Edit tabs, a model and LoRA picker, Gradio's HTTP API.

  sh egs/tta/app/run_app.sh                                   # every export under ckpts/tta, on 127.0.0.1:7860
  sh egs/tta/app/run_app.sh --checkpoint_path ckpts/tta/audioldm_s --port 8000 --host 0.0.0.0

Bound to 127.0.0.1 unless --host says otherwise (on a remote GPU box, forward the port: ssh -L 7860:localhost:7860 box).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from utils.cli import check_number, run_main
from utils.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint_path", type=Path, help="a model to offer first (experiment or export folder)")
    p.add_argument("--experiments_root", type=Path, default=Path("ckpts/tta"), help="where to list trained and converted models")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 serves the whole network)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--keep_models", type=int, default=2, help="loaded models kept in memory for quick switching")
    p.add_argument("--max_model_gb", type=float, default=16.0, help="weights of loaded models kept together, beyond the one in use")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_number("--port", args.port, 1)
    check_number("--keep_models", args.keep_models, 1)
    check_number("--max_model_gb", args.max_model_gb, 0)
    if args.checkpoint_path is not None and not args.checkpoint_path.exists():
        raise UserError(f"--checkpoint_path {args.checkpoint_path} does not exist")
    if importlib.util.find_spec("gradio") is None:
        raise UserError("the app needs gradio: pip install -r requirements-app.txt (run_app.sh does it on first use)")
    import torch

    from app.ui import build

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    page = build(args.experiments_root, args.checkpoint_path, device, args.keep_models, args.max_model_gb)
    print(f"serving on http://{args.host}:{args.port}", flush=True)
    page.launch(server_name=args.host, server_port=args.port, show_error=True)
    return 0


if __name__ == "__main__":
    run_main(main)
