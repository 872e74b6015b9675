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

SPLITS = ("train", "val", "test")
VAL_SPLIT_SEED = 0  # the held-out validation images are the same for every run seed and method


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
                 seed: int = 0, val_size: int = 0):
    """Load ``split`` (``train``/``val``/``test``) of data set ``name`` as uint8 images (:class:`ImageData`).

    ``val_size > 0`` holds that many training images out as the validation split: ``val`` is them,
    ``train`` the rest (a fixed permutation of the training images, seed :data:`VAL_SPLIT_SEED`; both keep
    the file order). ``limit`` keeps a seeded random subset of that many images of the split (for smoke
    runs); the order is otherwise deterministic.
    """
    entry = _entry(name)
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "val" and val_size <= 0:
        raise DataError(f"split 'val' of {name} needs val_size > 0 (how many training images to hold out)")
    x, y = entry.loader(resolve_root(root), "test" if split == "test" else "train", download)
    if val_size > 0 and split != "test":
        if not 0 < val_size < len(x):
            raise DataError(f"val_size={val_size} must be between 1 and {len(x) - 1} "
                            f"(the {len(x)} training images of {name})")
        held = np.zeros(len(x), bool)
        held[np.random.default_rng(VAL_SPLIT_SEED).permutation(len(x))[:val_size]] = True
        keep = held if split == "val" else ~held
        x, y = x[keep], y[keep]
    if limit is not None and limit < len(x):
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
        x, y = x[idx], y[idx]
    x = apply_convention(x, convention)
    return ImageData(torch.from_numpy(np.array(x, copy=True)), torch.from_numpy(np.array(y, copy=True)),
                     name, split, convention)
