"""Paired samples ``(x, cond)`` -- an image and its condition (HR and LR, photo and label map) -- and
map-style datasets that read samples from files one at a time.

Convention: ``x`` is what the flow models (uint8 ``(C, H, W)``), ``cond`` what it is conditioned on.
A map-style dataset returns one sample per index; :class:`~attnflow_core.data.batches.DatasetBatches`
stacks them into batches, so a data set never has to fit in memory.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from ..core.errors import DataError


@dataclass
class PairedImages:
    """An in-memory paired data set: ``x[i]`` is conditioned on ``cond[i]``."""

    x: Tensor
    cond: Tensor
    name: str
    split: str
    note: str = ""  # e.g. "stand-in built from scikit-image's bundled photographs"

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.cond.shape[0]:
            raise DataError(f"{self.name}: {self.x.shape[0]} images but {self.cond.shape[0]} conditions")

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.cond[i]


class FileListDataset(Dataset):
    """A map-style dataset over a list of items (file paths, path pairs, ...) decoded on access by
    ``load(item) -> sample`` (a tensor or an ``(x, cond)`` pair)."""

    def __init__(self, items: Sequence[Any], load: Callable[[Any], Any], name: str = "files") -> None:
        if len(items) == 0:
            raise DataError(f"{name}: no samples found")
        self.items, self.load, self.name = list(items), load, name

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.load(self.items[i])
