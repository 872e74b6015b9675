"""Data sets by name, as uint8 tensors ``(N, C, H, W)``.

* ``digits``  -- scikit-learn's bundled 8×8 handwritten digits (1,797 images; no download).
* ``mnist``   -- read from ``<root>/mnist/MNIST/raw/*-ubyte(.gz)`` (torchvision's layout), or
  downloaded with torchvision when ``download=True``.
* ``cifar10`` -- ``<root>/cifar10/cifar10_{train,test}.npz`` (uint8 ``x`` (N,32,32,3)), or
  torchvision's download.

Conventions: ``"standard"`` keeps the native shape (MNIST 1×28×28); ``"padded"`` is the
mARFlow code's: zero-pad to the next power of two (28 → 32) and copy grey images into 3
channels. The AttnFlow paper's MNIST numbers use ``"padded"``: bits/dim of the two
conventions are not comparable (three identical channels carry the information of one).

The data root comes from the ``root`` argument, else the ``ATTNFLOW_DATA`` environment
variable, else ``~/.cache/attnflow/data``.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DATASETS = ("digits", "mnist", "cifar10")
CONVENTIONS = ("standard", "padded")


class DataNotFoundError(FileNotFoundError):
    """A data set is not where it was looked for; the message says where and how to get it."""


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


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("ATTNFLOW_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "attnflow" / "data"


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _mnist(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    folders = [root / "mnist" / "MNIST" / "raw", root / "MNIST" / "raw", root / "mnist", root]
    files = {}
    for kind, magic in (("images", "idx3"), ("labels", "idx1")):
        names = [f"{prefix}-{kind}-{magic}-ubyte", f"{prefix}-{kind}-{magic}-ubyte.gz"]
        files[kind] = _find([d / n for d in folders for n in names])
    if files["images"] is None or files["labels"] is None:
        if download:
            import torchvision

            torchvision.datasets.MNIST(str(root / "mnist"), train=split == "train", download=True)
            return _mnist(root, split, download=False)
        raise DataNotFoundError(
            f"MNIST ({split}) not found: looked for {prefix}-images-idx3-ubyte[.gz] in "
            f"{', '.join(str(d) for d in folders)}. Set the data root (argument data_root / env ATTNFLOW_DATA) "
            f"to a folder holding mnist/MNIST/raw/, or pass download=True to fetch it with torchvision.")
    return _read_idx(files["images"])[:, None], _read_idx(files["labels"]).astype(np.int64)


def _cifar10(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    npz = _find([root / "cifar10" / f"cifar10_{split}.npz", root / f"cifar10_{split}.npz"])
    if npz is not None:
        with np.load(npz) as f:
            return np.ascontiguousarray(f["x"].transpose(0, 3, 1, 2)), f["y"].astype(np.int64)
    tv_dir = root / "cifar10"
    if download or (tv_dir / "cifar-10-batches-py").is_dir():
        import torchvision

        ds = torchvision.datasets.CIFAR10(str(tv_dir), train=split == "train", download=download)
        return np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)), np.asarray(ds.targets, dtype=np.int64)
    raise DataNotFoundError(
        f"CIFAR-10 ({split}) not found: looked for {root / 'cifar10' / f'cifar10_{split}.npz'} and "
        f"{tv_dir / 'cifar-10-batches-py'}. Set the data root (data_root / env ATTNFLOW_DATA) or pass download=True.")


def _digits(split: str, seed: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    perm = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(test_fraction * len(images)))
    idx = perm[n_test:] if split == "train" else perm[:n_test]
    return images[idx], d.target[idx].astype(np.int64)


def apply_convention(images: np.ndarray, convention: str) -> np.ndarray:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {CONVENTIONS}")
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


NATIVE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def dataset_shape(name: str, convention: str = "standard") -> tuple[int, int, int]:
    """Per-image shape of data set ``name`` under ``convention``, without loading it."""
    if name not in NATIVE_SHAPES:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    return tuple(apply_convention(np.zeros((1, *NATIVE_SHAPES[name]), np.uint8), convention).shape[1:])  # type: ignore


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 convention: str = "standard", download: bool = False, limit: int | None = None,
                 seed: int = 0) -> ImageData:
    """Load ``split`` (``train``/``test``) of data set ``name`` as uint8 images.

    ``limit`` keeps a seeded random subset of that many images (for smoke runs); the
    order is otherwise deterministic.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "digits":
        x, y = _digits(split, seed=0)  # the split itself never depends on the run seed
    elif name == "mnist":
        x, y = _mnist(resolve_root(root), split, download)
    else:
        x, y = _cifar10(resolve_root(root), split, download)
    if limit is not None and limit < len(x):
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
        x, y = x[idx], y[idx]
    x = apply_convention(x, convention)
    return ImageData(torch.from_numpy(np.array(x, copy=True)), torch.from_numpy(np.array(y, copy=True)), name, split, convention)
