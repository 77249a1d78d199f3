"""Local stand-ins for models users download (tests and benchmarks run offline).

`save_standin_t5(folder, ...)` writes a randomly initialised T5 encoder plus a Unigram tokenizer whose
vocabulary is counted from real AudioCaps captions as an ordinary Hugging Face folder, loaded back through exactly the same
`from_pretrained` code as a real T5 (no mocks). Tokenizers are built with the `tokenizers` library and
wrapped in T5TokenizerFast, because transformers 5.x's slow T5Tokenizer(vocab_file=...) can silently
produce a 4-token vocabulary.
"""

from __future__ import annotations

import collections
import csv
import math
import unicodedata
from pathlib import Path

import torch


def caption_tokenizer(captions: list[str], vocab_size: int):
    """A `tokenizers` Unigram tokenizer for `captions` (specials <pad>, </s>, <unk>; appends </s>), in T5's
    tokenizer.json layout: the NFKC characters and the most frequent words, each scored by its log frequency (ties
    in name order). Counted here rather than trained by `UnigramTrainer`, whose pieces differ from one process to
    the next (its hash maps are seeded per process), which made every test on the tiny T5 vary between runs."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    texts = [unicodedata.normalize("NFKC", c) for c in captions]
    words = collections.Counter("\u2581" + w for t in texts for w in t.split())
    chars = collections.Counter(ch for t in texts for ch in t if not ch.isspace())
    chars["\u2581"] = sum(words.values())  # the word-start mark alone: an unlisted word is it plus its characters
    total = sum(words.values()) + sum(chars.values())
    by_count = lambda counts: sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # noqa: E731
    pieces = by_count(chars) + by_count(words)[: max(0, vocab_size - 3 - len(chars))]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(p, math.log(n / total)) for p, n in pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return tok


def save_standin_t5(
    folder: str | Path, captions_csv: str | Path, vocab_size: int = 300, d_model: int = 32, d_ff: int = 64,
    num_layers: int = 2, num_heads: int = 2, d_kv: int = 16, max_captions: int = 3000, seed: int = 0,
) -> Path:
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    with Path(captions_csv).open(newline="", encoding="utf-8") as f:
        captions = [row["caption"] for _, row in zip(range(max_captions), csv.DictReader(f))]
    tok = caption_tokenizer(captions, vocab_size)
    folder = Path(folder)
    T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0, model_max_length=512).save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = T5Config(vocab_size=tok.get_vocab_size(), d_model=d_model, d_ff=d_ff, num_layers=num_layers,
                      num_heads=num_heads, d_kv=d_kv, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(str(folder))
    return folder
