"""Datasets over prepared metadata (`<processed_dir>/<Dataset>/{split}.json` + `mel/<Uid>.npy`).

Shared by every task. Sample order and random crops are functions of (seed, epoch, index) only, so a
resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.errors import UserError
from utils.io import read_json
from utils.layout import FINGERPRINT_FILE, SPLIT_FILES
from utils.mel import MelConfig, fit_frames

PREPARE_HINT = "run `sh egs/tta/prepare/run_prepare.sh --dataset <name>` first"


class MelDataset(Dataset):
    """Rows of one split of one or more prepared datasets; items are {mel [n_mels, T], caption, uid, row}.

    Indices >= len(self) encode the epoch (index = epoch * len + i): the crop offset is drawn from
    (seed, epoch, i), which keeps crops reproducible across workers and resumes.
    """

    def __init__(
        self, processed_dir: str | Path, datasets: list[str], split: str, mel_cfg: MelConfig,
        crop_frames: int | None = None, seed: int = 0, balance_by: str | None = None,
    ) -> None:
        self.mel_cfg = mel_cfg
        self.crop_frames = crop_frames
        self.seed = seed
        self.rows: list[dict] = []
        self.mel_paths: list[Path] = []
        for name in datasets:
            root = Path(processed_dir) / name
            meta = root / SPLIT_FILES.get(split, f"{split}.json")
            if not meta.exists():
                raise UserError(f"metadata {meta} not found; {PREPARE_HINT.replace('<name>', name)}")
            stamp = root / "mel" / FINGERPRINT_FILE
            if stamp.exists() and not read_json(stamp).get("complete", True):
                raise UserError(f"the preparation of {root} did not finish; {PREPARE_HINT.replace('<name>', name)} again")
            if stamp.exists() and read_json(stamp)["fingerprint"] != mel_cfg.fingerprint():
                changed = mel_cfg.differences(read_json(stamp)["audio"])
                raise UserError(f"{root / 'mel'} was prepared with other audio settings ({changed}); "
                                "use the same `audio` block (or --set audio.KEY=VALUE) or re-prepare with --overwrite")
            rows = read_json(meta)
            for row, repeats in zip(rows, repeat_factors(rows, balance_by, meta) if balance_by else [1] * len(rows)):
                self.rows += [row] * repeats
                self.mel_paths += [root / "mel" / f"{row['Uid']}.npy"] * repeats
        if not self.rows:
            if split == "train":
                raise UserError(f"split 'train' of {datasets} in {processed_dir} is empty; {PREPARE_HINT.replace('<name>', datasets[0])}")
            share = "valid_ratio" if split == "valid" else "test_ratio"
            raise UserError(f"split '{split}' of {datasets} in {processed_dir} is empty: too few clips for a share of them "
                            f"to go there; prepare again with --overwrite --set preprocess.{share}=... (larger), or add clips")

    def __len__(self) -> int:
        return len(self.rows)

    def clip_indices(self) -> list[int]:
        """The first row of every distinct clip (AudioCaps val/test have one row per caption)."""
        first: dict[str, int] = {}
        for i, row in enumerate(self.rows):
            first.setdefault(row["Uid"], i)
        return list(first.values())

    def load_mel(self, i: int) -> np.ndarray:
        return self.read_mel(self.mel_paths[i])

    def read_mel(self, path: Path) -> np.ndarray:
        """A prepared mel of this dataset, fitted to the training length."""
        if not path.exists():
            raise UserError(f"mel file {path} is missing; {PREPARE_HINT.replace('<name>', path.parent.parent.name)}")
        return fit_frames(np.load(path), self.mel_cfg)

    def __getitem__(self, index: int) -> dict:
        epoch, i = divmod(index, len(self.rows))
        mel = self.load_mel(i)
        if self.crop_frames is not None and self.crop_frames < mel.shape[-1]:
            rng = np.random.default_rng((self.seed, epoch, i))
            start = int(rng.integers(0, mel.shape[-1] - self.crop_frames + 1))
            mel = mel[:, start : start + self.crop_frames]
        row = self.rows[i]
        return {"mel": torch.from_numpy(np.ascontiguousarray(mel)), "caption": row["Caption"], "uid": row["Uid"], "row": row}


def repeat_factors(rows: list[dict], key: str, meta: Path) -> list[int]:
    """How often to list each row of one dataset's split so that every value of its attribute `key` (in
    `Attributes`, or the row itself) is seen about as often as the commonest: round(commonest count / its
    count), at least 1. Rows are repeated, not drawn with replacement, so the order stays a function of
    (seed, epoch) and resumes exactly."""
    values = [row.get("Attributes", {}).get(key, row.get(key)) for row in rows]
    if None in values:
        uid = rows[values.index(None)].get("Uid")
        raise UserError(f"{meta}: row {uid} has no attribute '{key}' (data.balance_by); give every row one or set data.balance_by: null")
    counts = Counter(values)
    most = max(counts.values())
    return [max(1, round(most / counts[v])) for v in values]


def collate(items: list[dict]) -> dict:
    """Stack mels to [B, n_mels, T]; keep captions/uids/rows as lists."""
    return {
        "mel": torch.stack([it["mel"] for it in items]),
        "caption": [it["caption"] for it in items],
        "uid": [it["uid"] for it in items],
        "row": [it["row"] for it in items],
    }




def mel_splits(cfg, train_crop_frames: int | None = None) -> tuple[MelDataset, MelDataset]:
    """The (train, valid) MelDatasets a config's `data` section names, in its audio settings; training items
    are random crops of `train_crop_frames` when given, validation items always whole clips."""
    data = cfg.data
    train = MelDataset(data.processed_dir, data.datasets, data.train_split, cfg.audio, train_crop_frames, cfg.seed, data.balance_by)
    return train, MelDataset(data.processed_dir, data.datasets, data.valid_split, cfg.audio, seed=cfg.seed)
