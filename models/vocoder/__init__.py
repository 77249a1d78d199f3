"""Vocoders share one call: log-mel [B, n_mels, T] -> waveform [B, T * hop]. Each is imported when chosen
(HiFi-GAN brings transformers). Imports utils only."""

from __future__ import annotations

from utils.errors import UserError
from utils.mel import MelConfig

VOCODERS = ("griffinlim", "hifigan")


def load_vocoder(kind: str, path: str | None, mel_cfg: MelConfig, device: str = "cpu"):
    if kind == "griffinlim":
        if path:  # it was silently ignored
            raise UserError(f"--vocoder_path {path} is for --vocoder hifigan; Griffin-Lim has no weights to load")
        from models.vocoder.griffinlim import GriffinLim

        return GriffinLim(mel_cfg)
    if kind == "hifigan":
        if not path:
            raise UserError("--vocoder hifigan needs --vocoder_path (a HiFi-GAN folder or experiment)")
        from models.vocoder.hifigan import load_hifigan

        return load_hifigan(path, mel_cfg, device)
    raise UserError(f"unknown vocoder '{kind}'; choose one of {', '.join(VOCODERS)}")
