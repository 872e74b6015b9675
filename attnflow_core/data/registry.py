"""Data sets by name: a registry of loaders, the data root, and ``load_dataset``.

A loader is ``loader(root: Path, split: str, download: bool) -> (images uint8 (N, C, H, W), labels (N,))``
registered with its native per-image shape. ``load_dataset`` adds what every data set shares: the
split check, a seeded subset (``limit``) and the storage convention (``standard`` / ``padded``).
Data sets too big to hold in memory are map-style datasets instead (:mod:`attnflow_core.data.paired`),
read batch by batch through :class:`~attnflow_core.data.batches.DatasetBatches`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import DataError
from ..core.registry import Registry
from .conventions import ImageData, apply_convention

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Callable[[Path, str, bool], tuple[np.ndarray, np.ndarray]]
    native_shape: tuple[int, int, int]


DATASETS: Registry[DatasetEntry] = Registry("data set")


def register_dataset(name: str, loader: Callable[[Path, str, bool], tuple[np.ndarray, np.ndarray]],
                     native_shape: tuple[int, int, int]) -> None:
    DATASETS.add(name, DatasetEntry(name, loader, tuple(native_shape)))


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$ATTNFLOW_DATA``, else ``~/.cache/attnflow/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("ATTNFLOW_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "attnflow" / "data"


def _entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of {DATASETS.names()}")
    return DATASETS[name]


def dataset_shape(name: str, convention: str = "standard") -> tuple[int, int, int]:
    """Per-image shape of data set ``name`` under ``convention``, without loading it."""
    shape = _entry(name).native_shape
    return tuple(apply_convention(np.zeros((1, *shape), np.uint8), convention).shape[1:])  # type: ignore


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 convention: str = "standard", download: bool = False, limit: int | None = None,
                 seed: int = 0):
    """Load ``split`` (``train``/``test``) of data set ``name`` as uint8 images (:class:`ImageData`).

    ``limit`` keeps a seeded random subset of that many images (for smoke runs); the
    order is otherwise deterministic.
    """
    entry = _entry(name)
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    x, y = entry.loader(resolve_root(root), split, download)
    if limit is not None and limit < len(x):
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
        x, y = x[idx], y[idx]
    x = apply_convention(x, convention)
    return ImageData(torch.from_numpy(np.array(x, copy=True)), torch.from_numpy(np.array(y, copy=True)),
                     name, split, convention)
