r"""Paired data for 8× super-resolution: HR → LR by MATLAB bicubic, the ×8 checks, flips, and the stand-in.

A sample is ``(hr, lr)``: uint8 ``(C, H, W)`` and ``(C, H/8, W/8)``, with ``lr = imresize(hr, 1/8)``
(:mod:`attnflow_core.data.resize`), as SRFlow makes its LR inputs. Training flips HR and LR together
(SRFlow's only augmentation; the ×8 bicubic commutes with the flip because ``H = 8·h`` exactly).

**Smoke stand-in** (:func:`sr_standin`), needing no download: 8× SR on 64×64 crops of photographs that
ship with installed packages: scikit-image's ``astronaut``, ``chelsea``, ``coffee``, ``rocket`` and
``motorcycle_left`` and scikit-learn's ``china`` and ``flower``, each first halved by the same bicubic (so
a crop holds more structure than texture). The right-most ``hr_size`` columns of every photo are the
test region (non-overlapping tiles); training crops are drawn, seeded, from the rest, so no test pixel is
ever trained on. It is a stand-in for CelebA faces, not a face data set: its numbers test the pipeline.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.errors import DataError, DataNotFoundError
from .batches import Batch, BatchSource
from .paired import PairedImages
from .resize import imresize

SCALE = 8
STANDIN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "china", "flower")
STANDIN_NOTE = ("stand-in: 8× SR on 64×64 crops of photographs bundled with scikit-image and scikit-learn "
                "(not CelebA faces)")


def check_x8_pair(hr: Tensor, lr: Tensor, what: str = "pair") -> None:
    """``hr`` (…, C, H, W) and ``lr`` (…, C, H/8, W/8) with the same channels, or a :class:`DataError`."""
    if hr.dim() < 3 or lr.dim() != hr.dim():
        raise DataError(f"{what}: HR {tuple(hr.shape)} and LR {tuple(lr.shape)} must both be (…, C, H, W)")
    if hr.shape[-3] != lr.shape[-3]:
        raise DataError(f"{what}: HR has {hr.shape[-3]} channels but LR has {lr.shape[-3]}")
    h, w = hr.shape[-2:]
    if h % SCALE or w % SCALE or tuple(lr.shape[-2:]) != (h // SCALE, w // SCALE):
        raise DataError(f"{what}: HR {h}×{w} and LR {lr.shape[-2]}×{lr.shape[-1]} are not a ×{SCALE} pair "
                        f"(HR sides must be multiples of {SCALE} and LR = HR/{SCALE})")


def make_lr(hr: Tensor) -> Tensor:
    """The 8× LR image(s) of uint8 HR image(s) ``(…, C, H, W)`` with ``H, W`` multiples of 8."""
    if hr.dtype != torch.uint8:
        raise DataError(f"make_lr expects uint8 HR images, got {hr.dtype}")
    h, w = hr.shape[-2:]
    if h % SCALE or w % SCALE:
        raise DataError(f"an HR image of {h}×{w} has no exact 8× LR: height and width must be multiples of 8")
    return imresize(hr, 1.0 / SCALE)


class RandomHFlip(BatchSource):
    """Flip each ``(hr, lr)`` pair of a batch left-right with probability 1/2 (the global RNG, which the
    trainer re-seeds every step, so batches stay deterministic)."""

    def __init__(self, source: BatchSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def take(self, idx: Tensor) -> Batch:
        hr, lr = self.source.take(idx)
        flip = torch.rand(hr.shape[0]) < 0.5
        if bool(flip.any()):
            hr, lr = hr.clone(), lr.clone()
            hr[flip], lr[flip] = hr[flip].flip(-1), lr[flip].flip(-1)
        return hr, lr


@lru_cache(maxsize=1)
def standin_photos() -> tuple[np.ndarray, ...]:
    """The stand-in's source photographs as uint8 ``(3, H, W)`` arrays, halved by MATLAB bicubic."""
    import importlib.util

    from PIL import Image

    sk = importlib.util.find_spec("sklearn")  # its two sample photos, read without importing sklearn.datasets
    try:
        import skimage.data as skd
    except ImportError as exc:
        skd, missing = None, str(exc)
    if skd is None or sk is None or not sk.submodule_search_locations:
        raise DataNotFoundError("the SR stand-in is built from photographs bundled with scikit-image and "
                                "scikit-learn; install both (pip install scikit-image scikit-learn)"
                                + (f": {missing}" if skd is None else ""))
    sample = Path(list(sk.submodule_search_locations)[0]) / "datasets" / "images"

    def sklearn_photo(name: str) -> np.ndarray:
        with Image.open(sample / name) as im:
            return np.asarray(im.convert("RGB"))

    loaders = {"astronaut": skd.astronaut, "chelsea": skd.chelsea, "coffee": skd.coffee, "rocket": skd.rocket,
               "motorcycle_left": lambda: skd.stereo_motorcycle()[0],
               "china": lambda: sklearn_photo("china.jpg"), "flower": lambda: sklearn_photo("flower.jpg")}
    out = []
    for name in STANDIN_PHOTOS:
        img = torch.from_numpy(np.array(loaders[name]()[..., :3], dtype=np.uint8)).permute(2, 0, 1)
        out.append(imresize(img, 0.5).numpy())
    return tuple(out)


def standin_positions(split: str = "train", hr_size: int = 64, n_train: int = 1024, n_test: int | None = None,
                      seed: int = 0) -> list[tuple[int, int, int]]:
    """``(photo, top, left)`` of every crop of the stand-in (see the module docstring): test tiles lie in
    the right-most ``hr_size`` columns, training crops entirely to their left."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if hr_size % SCALE:
        raise DataError(f"hr_size must be a multiple of {SCALE}, got {hr_size}")
    shapes = [p.shape[1:] for p in standin_photos()]
    if split == "test":
        pos = [(k, r, w - hr_size) for k, (h, w) in enumerate(shapes) for r in range(0, h - hr_size + 1, hr_size)]
        if n_test is not None and n_test < len(pos):
            pos = [pos[i] for i in np.linspace(0, len(pos) - 1, n_test).round().astype(int)]
        return pos
    room = [(h - hr_size, w - 2 * hr_size) for h, w in shapes]  # top-left corners of crops left of the strip
    weights = np.array([max(rh, 0) * max(rw, 0) for rh, rw in room], dtype=np.float64)
    rng = np.random.default_rng(seed)
    pos = []
    for k in rng.choice(len(room), size=n_train, p=weights / weights.sum()):
        pos.append((int(k), int(rng.integers(0, room[k][0] + 1)), int(rng.integers(0, room[k][1] + 1))))
    return pos


def sr_standin(split: str = "train", hr_size: int = 64, n_train: int = 1024, n_test: int | None = None,
               seed: int = 0) -> PairedImages:
    """The smoke stand-in (module docstring): ``n_train`` seeded crops, or every test tile (``n_test``:
    an evenly spaced subset), as uint8 ``(hr, lr)`` pairs held in memory."""
    photos = standin_photos()
    pos = standin_positions(split, hr_size, n_train, n_test, seed)
    hr = torch.from_numpy(np.stack([photos[k][:, r:r + hr_size, c:c + hr_size] for k, r, c in pos]))
    return PairedImages(hr, make_lr(hr), "sr_standin", split, note=STANDIN_NOTE)
