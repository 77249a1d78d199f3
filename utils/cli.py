"""Shared entry-point plumbing: repo on sys.path, config options, one-line errors for user mistakes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from utils.errors import UserError


def add_config_args(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    parser.add_argument("--config", default=default_config, required=default_config is None, help="JSON5 experiment config")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_size=4 (repeatable)",
    )


def quiet_libraries() -> None:
    """Entry points print their own progress: silence transformers'/diffusers' warnings and per-file
    weight-loading bars. Environment settings they read when first imported, so an entry point that stops
    early (`--help`, a bad option) does not pay for importing them."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (an entry point called from Python): tell it directly
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()


def run_main(main: Callable[[], int | None]) -> None:
    """Run `main`; a UserError becomes 'error: ...' on stderr and exit code 2, without a traceback."""
    quiet_libraries()
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
