"""The one config loader: JSON5 files with `base_config` inheritance, `--set` overrides, typed validation.

A config file is JSON5 (comments, trailing commas). `"base_config": "config/x.json"` names a parent,
resolved from the repository root (or relative to the child file); dicts deep-merge, everything else
replaces. The merged dict is validated into frozen dataclasses: unknown keys, missing keys and wrong
types are `ConfigError`s that name the key, the file chain and, for typos, the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import json5

from utils.errors import UserError
from utils.io import read_text

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_CHAIN = 6  # a file plus at most five levels of base configs (a demo LoRA on the LoRA on the fine-tune config: 4)

T = TypeVar("T")


class ConfigError(UserError):
    """A user mistake in a config file or override; bins print it as one line."""


def _resolve_path(ref: str, child: Path | None) -> Path:
    candidates = [Path(ref)] if Path(ref).is_absolute() else [REPO_ROOT / ref, Path.cwd() / ref]
    if child is not None and not Path(ref).is_absolute():
        candidates.insert(1, child.parent / ref)
    for cand in candidates:
        if cand.is_file():
            return cand.resolve()
    raise ConfigError(f"config file not found: {ref}" + (f" (named in {child})" if child else ""))


def deep_merge(base: dict, override: dict) -> dict:
    """Dicts merge key by key; lists and scalars in `override` replace."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def changed_keys(there: dict, here: dict, prefix: str = "") -> list[str]:
    """'KEY: THERE there, HERE here' for every leaf that differs between two config dicts (dotted keys), so an
    error can name exactly what another config or an earlier run set otherwise."""
    out = []
    for key in dict.fromkeys([*there, *here]):
        a, b = there.get(key, "unset"), here.get(key, "unset")
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} there, {b} here")
    return out


def load_raw(path: str | Path) -> tuple[dict, list[Path]]:
    """Read a config and its base chain; returns the merged dict and the chain (child first)."""
    chain: list[Path] = []
    layers: list[dict] = []
    current: Path | None = _resolve_path(str(path), None)
    while current is not None:
        if current in chain:
            raise ConfigError(f"base_config cycle: {' -> '.join(map(str, chain + [current]))}")
        if len(chain) == MAX_CHAIN:
            raise ConfigError(f"base_config chain deeper than {MAX_CHAIN - 1} levels: {' -> '.join(map(str, chain))}")
        chain.append(current)
        try:
            data = json5.loads(read_text(current))
        except ValueError as err:
            raise ConfigError(f"{current}: not valid JSON5 ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{current}: top level must be an object")
        base = data.pop("base_config", None)
        layers.append(data)
        current = _resolve_path(base, current) if base else None
    merged: dict = {}
    for layer in reversed(layers):
        merged = deep_merge(merged, layer)
    return merged, chain


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` strings; the value is parsed as JSON5, falling back to a plain string."""
    data = typing.cast(dict, json5.loads(json5.dumps(data)))  # deep copy
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        dotted, raw = item.split("=", 1)
        try:
            value = json5.loads(raw)
        except ValueError:
            value = raw
        node = data
        keys = dotted.strip().split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{key}' is not a section")
        node[keys[-1]] = value
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (object), got {value!r}")
        return build(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where}: {value!r} is not a finite number")
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def build(schema: type[T], data: dict, where: str = "config") -> T:
    """Validate `data` into the (frozen) dataclass `schema`, recursively."""
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(schema)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}" if where != "config" else name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: required key '{name}' is missing")
    try:
        return schema(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}: {err}") from None


def load_config(path: str | Path, schema: type[T], overrides: list[str] | None = None) -> tuple[T, dict]:
    """Load, merge, override and validate; returns the typed config and the resolved plain dict."""
    raw, chain = load_raw(path)
    raw = apply_overrides(raw, overrides or [])
    files = " <- ".join(str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p) for p in chain)
    try:
        return build(schema, raw), raw
    except ConfigError as err:
        raise ConfigError(f"{err} (config: {files})") from None


def to_dict(cfg: Any) -> dict:
    """A typed config back to plain JSON-able data (for artifacts and resolved-config dumps)."""
    return json5.loads(json5.dumps(dataclasses.asdict(cfg), quote_keys=True))
