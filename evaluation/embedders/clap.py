"""CLAP (Wu et al. 2023): a text-audio score (cosine of the two embeddings) and an audio embedding.

Loaded with transformers' `ClapModel` + `AutoTokenizer` + `ClapFeatureExtractor` from a local folder, for
example a downloaded `laion/clap-htsat-unfused`. Audio goes in at the feature extractor's rate (48 kHz).
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import torch
from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

from utils.errors import UserError


class ClapEmbedding:
    name = "clap"

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        try:
            self.model = ClapModel.from_pretrained(str(path)).eval().to(device)
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.features = ClapFeatureExtractor.from_pretrained(str(path))
        except (OSError, ValueError) as err:
            raise UserError(f"CLAP model folder {path} could not be loaded ({type(err).__name__}); pass a local "
                            "copy of e.g. laion/clap-htsat-unfused (config.json, weights, tokenizer, preprocessor)") from None
        self.sample_rate = int(self.features.sampling_rate)
        self.device = device

    @torch.no_grad()
    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """Unit-norm audio embedding of one clip at `sample_rate`."""
        inputs = self.features(np.asarray(wav, dtype=np.float32), sampling_rate=self.sample_rate, return_tensors="pt").to(self.device)
        return self.model.get_audio_features(**inputs).pooler_output[0].double().cpu().numpy()

    @torch.no_grad()
    def text(self, captions: list[str]) -> np.ndarray:
        """Unit-norm text embeddings [B, D]."""
        tok = self.tokenizer(captions, padding=True, truncation=True, return_tensors="pt").to(self.device)
        return self.model.get_text_features(input_ids=tok.input_ids, attention_mask=tok.attention_mask).pooler_output.double().cpu().numpy()

    def score(self, wavs: list[np.ndarray], captions: list[str]) -> np.ndarray:
        """Per-pair cosine similarity between each clip and its caption (the CLAP score)."""
        audio = np.stack([self(w) for w in wavs])
        return (audio * self.text(captions)).sum(axis=1)

    def rank(self, wavs: torch.Tensor, sample_rate: int, prompt: str) -> torch.Tensor:
        """CLAP scores of candidate clips [N, samples] at `sample_rate` for one prompt (the pipeline's scorer)."""
        clips = [librosa.resample(w.numpy(), orig_sr=sample_rate, target_sr=self.sample_rate) for w in wavs]
        return torch.from_numpy(self.score(clips, [prompt] * len(clips)))
