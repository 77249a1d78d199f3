"""The one loader for published embedder checkpoints (PANNs, VGGish): safe unpickling, clear user errors."""

from __future__ import annotations

from pathlib import Path

import torch

from utils.errors import UserError


def load_weights(model: torch.nn.Module, path: str | Path, what: str, hint: str, state_key: str | None = None,
                 skip_prefixes: tuple[str, ...] = ()) -> torch.nn.Module:
    """Load a published .pth into `model` (eval mode) with `torch.load(weights_only=True)`: a checkpoint from
    elsewhere cannot run code. `state_key` unwraps {"model": state_dict}-style files; keys starting with
    `skip_prefixes` (buffers the model recomputes) are ignored; anything else missing or extra is an error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} checkpoint {path} not found; {hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise UserError(f"{what} checkpoint {path} could not be read ({type(err).__name__}); {hint}") from None
    if state_key is not None and isinstance(state.get(state_key), dict):
        state = state[state_key]
    state = {k: v for k, v in state.items() if not k.startswith(skip_prefixes)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{path} is not a {what} checkpoint (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval()
