"""Reading weights (ours or a published model's): a missing, truncated or corrupt file becomes one line that
names it, instead of a library traceback from deep inside a deserializer."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from safetensors import SafetensorError

from utils.errors import UserError

LOAD_ERRORS = (OSError, ValueError, RuntimeError, EOFError, SafetensorError, json.JSONDecodeError, pickle.UnpicklingError)
T = TypeVar("T")


@contextmanager
def reading(what: str, path: str | Path) -> Iterator[None]:
    """Any read failure inside the block -> UserError naming `what` and `path` (a UserError passes through)."""
    try:
        yield
    except UserError:
        raise
    except LOAD_ERRORS as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"{path}: the {what} could not be loaded (missing, truncated or corrupt file?): {first}") from None


def load_part(what: str, loader: Callable[[str], T], path: str | Path) -> T:
    """`loader(path)` (a from_pretrained) inside `reading`."""
    with reading(what, path):
        return loader(str(path))
