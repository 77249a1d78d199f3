"""Shared entry-point plumbing: repo on sys.path, config options, one-line errors for user mistakes."""

from __future__ import annotations

import argparse
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
    """Entry points print their own progress; silence per-file weight-loading bars of transformers/diffusers."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()


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
