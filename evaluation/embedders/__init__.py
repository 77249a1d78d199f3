"""Audio embedders for the distribution metrics, chosen by name: the offline default `mel_stats`, or a real
pretrained model loaded from a local path (PANNs Cnn14, VGGish, CLAP). Each is called on one waveform at
its `sample_rate` and returns a 1-D embedding of the clip, or [n, d] rows that each count as a sample (VGGish's
0.96 s examples, as FAD counts them). Each is imported when chosen (they bring large models)."""

from __future__ import annotations

from pathlib import Path

from utils.errors import UserError
from utils.mel import MelConfig

EMBEDDINGS = ("mel_stats", "panns", "vggish", "clap")


def load_embedding(name: str, path: str | Path | None, mel_cfg: MelConfig, device: str = "cpu"):
    if name not in EMBEDDINGS:
        raise UserError(f"unknown --embedding '{name}'; choose one of {', '.join(EMBEDDINGS)}")
    if name == "mel_stats":
        from evaluation.distribution import MelStatsEmbedding

        return MelStatsEmbedding(mel_cfg)
    if path is None:
        raise UserError(f"--embedding {name} needs --embedding_path (a local checkpoint; nothing is downloaded)")
    if name == "panns":
        from evaluation.embedders.panns import PannsEmbedding

        return PannsEmbedding(path, device)
    if name == "vggish":
        from evaluation.embedders.vggish import VGGishEmbedding

        return VGGishEmbedding(path, device)
    from evaluation.embedders.clap import ClapEmbedding

    return ClapEmbedding(path, device)
