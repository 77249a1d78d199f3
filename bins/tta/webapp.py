"""A web page to try, compare and share models: Generate and Edit tabs, a model and LoRA picker, Gradio's HTTP API.

  sh egs/tta/app/run_app.sh                                   # every export under ckpts/tta, on 127.0.0.1:7860
  sh egs/tta/app/run_app.sh --checkpoint_path ckpts/tta/audioldm_s --port 8000 --host 0.0.0.0

Bound to 127.0.0.1 unless --host says otherwise (on a remote GPU box, forward the port: ssh -L 7860:localhost:7860 box).
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import socket
import sys
from pathlib import Path

from utils.cli import check_number, entry_point_parser, resolve_device, run_main
from utils.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = entry_point_parser(__doc__)
    p.add_argument("--checkpoint_path", type=Path, help="a model to offer first (experiment or export folder)")
    p.add_argument("--experiments_root", type=Path, default=Path("ckpts/tta"), help="where to list trained and converted models")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 serves the whole network)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--keep_models", type=int, default=2, help="loaded models kept in memory for quick switching")
    p.add_argument("--max_model_gb", type=float, default=16.0, help="weights of loaded models kept together, beyond the one in use")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    return p.parse_args(argv)


def check_port(host: str, port: int) -> None:
    """The address must be free before the models load (seconds to minutes): a port out of range, in use or an
    unknown host is one line here, not gradio's traceback after the load."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is not a TCP port; give one in 1-65535")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as err:  # in use, not an address of this machine, or a name that does not resolve
        raise UserError(f"--host {host} --port {port} cannot be served ({err.strerror or err}); give another --port "
                        "or --host") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_port(args.host, args.port)
    check_number("--keep_models", args.keep_models, 1)
    check_number("--max_model_gb", args.max_model_gb, 0)
    if args.checkpoint_path is not None and not args.checkpoint_path.exists():
        raise UserError(f"--checkpoint_path {args.checkpoint_path} does not exist")
    if importlib.util.find_spec("gradio") is None:
        raise UserError("the app needs gradio: pip install -r requirements-app.txt (run_app.sh does it on first use)")
    from app.ui import build

    device = resolve_device(args.device)
    page = build(args.experiments_root, args.checkpoint_path, device, args.keep_models, args.max_model_gb)
    print(f"serving on http://{args.host}:{args.port}", flush=True)
    # a service manager's (or kill's) SIGTERM ends the app as Ctrl-C does, so its exit handlers remove its files
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    page.launch(server_name=args.host, server_port=args.port, show_error=True)
    return 0


if __name__ == "__main__":
    run_main(main)
