"""Shared entry-point plumbing: repo on sys.path, config options, one-line errors for user mistakes."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from utils.errors import UserError


class EntryPointParser(argparse.ArgumentParser):
    """argparse with a usage mistake (a missing or unknown option, an invalid choice or number) as one line and
    exit 2, like a UserError; argparse's own error prints the whole usage text first, which --help is for."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def entry_point_parser(doc: str | None) -> EntryPointParser:
    """An entry point's parser: its module docstring as the description, laid out as written."""
    return EntryPointParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_config_args(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    parser.add_argument("--config", default=default_config, required=default_config is None, help="JSON5 experiment config")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_size=4 (repeatable)",
    )


def check_number(option: str, value: float | None, minimum: float | None = None) -> None:
    """A numeric option that is non-finite or below `minimum` -> one line (None: not given, the default applies)."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UserError(f"{option} {value} is not a finite number")
    if minimum is not None and value < minimum:
        raise UserError(f"{option} must be at least {minimum:g}, got {value:g}")


def check_input_file(option: str, path: Path, hint: str = "") -> None:
    """A file to read: a missing path and a folder given for a file get one line each (`hint`: what to do)."""
    if path.is_file():
        return
    problem = "is a folder, not a file" if path.is_dir() else "not found"
    raise UserError(f"{option} {path} {problem}" + (f"; {hint}" if hint else ""))


def check_output_dir(option: str, path: Path) -> None:
    """A folder to write into: an existing file at it, or at the nearest existing parent, is refused, and so is a
    parent nothing can be written in (probed with a temp file: permission bits say nothing to root or about a
    read-only mount), before any work whose results would then be lost."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{option} {path}: {p} is a file, not a folder; give a folder path")
            try:
                fd, probe = tempfile.mkstemp(prefix=".write_probe.", dir=p)
            except OSError as err:
                raise UserError(f"{option} {path}: nothing can be written in {p} ({err.strerror}); give a folder you can write to") from None
            os.close(fd)
            os.unlink(probe)
            return


def output_dir_or_next_run(option: str, given: Path | None, runs: Path) -> Path:
    """The folder an entry point writes into: `given`, or else the next numbered run under `runs` (001, 002, ...),
    so a default never writes over an earlier run's files; checked before any work."""
    from utils.io import next_run_dir

    check_output_dir(option, given or runs)
    return given or next_run_dir(runs)


def resolve_device(name: str | None) -> str:
    """`--device` -> a device torch can run on here: None picks cuda when available, else cpu. A misspelt name
    or a device this machine lacks is one line, not torch's assertion deep inside the first model load."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name; give cpu, cuda or cuda:N") from None
    if device.type != "cpu" and (device.index or 0) >= _device_count(device.type):
        raise UserError(f"--device {name}: this machine has no such device ({_device_count(device.type)} of type "
                        f"{device.type} usable by torch); give --device cpu or leave it out")
    return name


def _device_count(kind: str) -> int:
    """How many devices of this type torch can use here (torch.accelerator is newer than our lowest torch)."""
    import torch

    if kind == "mps":
        return int(torch.backends.mps.is_available())
    backend = getattr(torch, kind, None)
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        return 0
    return backend.device_count() if hasattr(backend, "device_count") else 1


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
