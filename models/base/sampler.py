"""The training sampler: a seeded permutation per epoch, so a resumed run sees the batches the uninterrupted
run would have (the index encodes the epoch; datasets may use it to vary crops per epoch)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, yielding epoch-encoded indices (see MelDataset)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        offset = self.epoch * self.size
        return iter([offset + i for i in order])
