"""The unconditional image data sets, as uint8 tensors ``(N, C, H, W)``, registered by name.

* ``digits``  -- scikit-learn's bundled 8×8 handwritten digits (1,797 images; no download).
* ``mnist``   -- read from ``<root>/mnist/MNIST/raw/*-ubyte(.gz)`` (torchvision's layout), or
  downloaded with torchvision when ``download=True``.
* ``cifar10`` -- ``<root>/cifar10/cifar10_{train,test}.npz`` (uint8 ``x`` (N,32,32,3)), or
  torchvision's download.

Storage conventions (``standard`` / ``padded``) are in :mod:`attnflow_core.data.conventions`.
The data root comes from the ``root`` argument, else the ``ATTNFLOW_DATA`` environment
variable, else ``~/.cache/attnflow/data`` (:func:`~attnflow_core.data.registry.resolve_root`).
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ..core.errors import DataError, DataNotFoundError
from .registry import register_dataset


def decode_image(path: Path):
    """A PIL image decoded in full (so that a corrupt or truncated file fails here, not at first use);
    an undecodable file raises :class:`DataError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, SyntaxError, ValueError, struct.error) as exc:  # what PIL's decoders raise on broken files
        raise DataError(f"cannot decode image {path}: {exc}") from None


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


register_dataset("digits", lambda root, split, download: _digits(split, seed=0), (1, 8, 8))  # split never depends on the run seed
register_dataset("mnist", lambda root, split, download: _mnist(root, split, download), (1, 28, 28))
register_dataset("cifar10", lambda root, split, download: _cifar10(root, split, download), (3, 32, 32))
