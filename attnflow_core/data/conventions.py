"""What every image data set shares: the uint8 container and the storage conventions.

Conventions: ``"standard"`` keeps the native shape (MNIST 1×28×28); ``"padded"`` is the mARFlow code's:
zero-pad to the next power of two (28 → 32) and copy grey images into 3 channels. The AttnFlow paper's
MNIST numbers use ``"padded"``: bits/dim of the two conventions are not comparable (three identical
channels carry the information of one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from ..core.errors import DataError

CONVENTIONS = ("standard", "padded")


@dataclass
class ImageData:
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # int64 (N,)
    name: str
    split: str
    convention: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.images.shape[0]


def apply_convention(images: np.ndarray, convention: str) -> np.ndarray:
    """``standard``: unchanged; ``padded``: zero-pad to the next power of two, grey → 3 channels."""
    if convention not in CONVENTIONS:
        raise DataError(f"unknown convention {convention!r}; choose one of {CONVENTIONS}")
    if convention == "standard":
        return images
    _, c, h, w = images.shape
    th, tw = 1 << (h - 1).bit_length(), 1 << (w - 1).bit_length()
    if (th, tw) != (h, w):
        top, left = (th - h) // 2, (tw - w) // 2
        images = np.pad(images, ((0, 0), (0, 0), (top, th - h - top), (left, tw - w - left)))
    if c == 1:
        images = np.repeat(images, 3, axis=1)
    return images
