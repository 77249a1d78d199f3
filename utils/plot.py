"""Mel images for TensorBoard and reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def mel_figure(mels: list[np.ndarray], titles: list[str]):
    """One row per mel [n_mels, T], low frequencies at the bottom."""
    fig, axes = plt.subplots(len(mels), 1, figsize=(8, 2.2 * len(mels)), squeeze=False)
    for ax, mel, title in zip(axes[:, 0], mels, titles):
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=max(float(mel.min()), -11.5), vmax=float(mel.max()))
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame")
        ax.set_ylabel("mel bin")
    fig.tight_layout()
    return fig


def save_mel_png(path: str | Path, mel: np.ndarray, title: str) -> None:
    fig = mel_figure([mel], [title])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
