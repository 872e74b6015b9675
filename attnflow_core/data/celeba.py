r"""CelebA for 8× face super-resolution, read from a user's own licensed copy (CelebA may not be
redistributed; nothing here downloads it).

Two layouts are accepted under the CelebA root (``root`` argument, else ``$ATTNFLOW_CELEBA``, else
``<data root>/celeba``):

* **aligned images** -- ``img_align_celeba/000001.jpg …`` (also under ``Img/``, or nested twice as in the
  Kaggle copy) with the official partition file ``list_eval_partition.txt`` (``"<file> <0|1|2>"``,
  also under ``Eval/``) or Kaggle's ``list_eval_partition.csv`` (header ``image_id,partition``);
  0 = train (162,770), 1 = val (19,867), 2 = test (19,962). Crop ``"align178"``: the 178×178 square
  starting at row 20 of the 178×218 image, MATLAB-bicubic to 160×160 (a suggestion, not SRFlow's crop:
  SRFlow's faces come from the in-the-wild images through HD-CelebA-Cropper, so its numbers are not
  directly comparable);
* **ready HR crops** -- ``<dir>/train/`` and ``<dir>/test/`` (or ``val/``) holding ``hr_size × hr_size``
  images (e.g. SRFlow's recipe), each checked for its size.

Samples are ``(hr, lr)`` uint8 pairs, ``lr = imresize(hr, 1/8)``, decoded one at a time (a map-style
dataset: wrap it in :class:`~attnflow_core.data.DatasetBatches` to train).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..core.errors import DataError, DataNotFoundError
from .images import decode_image
from .registry import resolve_root
from .resize import imresize
from .superres import make_lr

PARTITIONS = {"train": 0, "val": 1, "test": 2}
IMAGE_EXT = (".jpg", ".jpeg", ".png")
_HOW = ("CelebA cannot be downloaded by this package (its licence forbids redistribution): point the CelebA "
        "root (argument root, env ATTNFLOW_CELEBA, or <data root>/celeba) at your own copy")


def celeba_root(root: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$ATTNFLOW_CELEBA``, else ``<data root>/celeba``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("ATTNFLOW_CELEBA"):
        return Path(os.environ["ATTNFLOW_CELEBA"]).expanduser()
    return resolve_root(data_root) / "celeba"


def _first(paths: list[Path], want_dir: bool) -> Path | None:
    return next((p for p in paths if (p.is_dir() if want_dir else p.is_file())), None)


def find_aligned(root: Path) -> tuple[Path, Path]:
    """The image folder and the partition file of an aligned-CelebA root (or a clear error)."""
    bases = [root, root / "celeba", root / "CelebA"]
    dirs = [b / sub for b in bases for sub in ("img_align_celeba/img_align_celeba", "img_align_celeba",
                                               "Img/img_align_celeba", "Img/img_align_celeba_png")]
    image_dir = _first(dirs, True)
    if image_dir is None or not any(n.lower().endswith(IMAGE_EXT) for n in os.listdir(image_dir)):
        where = ", ".join(str(d) for d in dirs[:4])
        raise DataNotFoundError(f"CelebA images not found: looked for a non-empty img_align_celeba/ in {where} "
                                f"(and Img/). {_HOW}.")
    files = [b / sub / name for b in bases for sub in ("", "Eval")
             for name in ("list_eval_partition.txt", "list_eval_partition.csv")]
    part = _first(files, False)
    if part is None:
        raise DataNotFoundError(f"CelebA partition file not found: looked for list_eval_partition.txt / .csv in "
                                f"{', '.join(str(b) for b in bases)} and their Eval/ folders (images are in "
                                f"{image_dir}). {_HOW}.")
    return image_dir, part


def read_partition(path: Path) -> dict[str, int]:
    """``{file stem: partition}`` from the official ``.txt`` or Kaggle's ``.csv``."""
    out: dict[str, int] = {}
    lines = Path(path).read_text().splitlines()
    if path.suffix == ".csv" and lines and lines[0].replace(" ", "").lower().startswith("image_id,partition"):
        lines = lines[1:]
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(f"{path}, line {i}: expected '<file> <0|1|2>', got {line.strip()!r}")
        out[Path(parts[0]).stem] = int(parts[1])
    if not out:
        raise DataError(f"{path} lists no images")
    return out


def _load_rgb(path: Path) -> Tensor:
    arr = np.array(decode_image(path).convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr).permute(2, 0, 1)


class CelebASR(Dataset):
    """CelebA ``(hr, lr)`` pairs, decoded on access (module docstring: layouts, crop, split names)."""

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", hr_size: int = 160,
                 crop: str = "align178", limit: int | None = None, data_root: str | os.PathLike | None = None) -> None:
        if split not in PARTITIONS:
            raise DataError(f"CelebA split must be one of {tuple(PARTITIONS)}, got {split!r}")
        if hr_size % 8:
            raise DataError(f"hr_size must be a multiple of 8 for 8× SR, got {hr_size}")
        self.root, self.split, self.hr_size = celeba_root(root, data_root), split, hr_size
        ready = self._ready_folder()
        if ready is not None:
            self.crop = "ready"
            self.paths = sorted(p for p in ready.iterdir() if p.suffix.lower() in IMAGE_EXT)
            if not self.paths:
                raise DataNotFoundError(f"{ready} holds no .jpg/.png images")
        else:
            if crop != "align178":
                raise DataError(f"unknown CelebA crop {crop!r}; the aligned images support 'align178'")
            self.crop = crop
            image_dir, part_file = find_aligned(self.root)
            part = read_partition(part_file)
            on_disk = {Path(n).stem: n for n in os.listdir(image_dir) if n.lower().endswith(IMAGE_EXT)}
            wanted = sorted(s for s, p in part.items() if p == PARTITIONS[split])
            missing = [s for s in wanted if s not in on_disk]
            if missing:
                raise DataNotFoundError(f"{len(missing)} {split} images listed in {part_file} are not in {image_dir} "
                                        f"(first: {missing[0]}); is the copy complete?")
            self.paths = [image_dir / on_disk[s] for s in wanted]
        if limit is not None:
            self.paths = self.paths[:limit]
        if not self.paths:
            raise DataError(f"CelebA {split} split under {self.root} is empty")

    def _ready_folder(self) -> Path | None:
        names = {"train": ("train",), "val": ("val", "validation"), "test": ("test", "val", "validation")}[self.split]
        for base in (self.root, self.root / f"hr{self.hr_size}"):
            hit = _first([base / n for n in names], True)
            if hit is not None:
                return hit
        return None

    def __len__(self) -> int:
        return len(self.paths)

    def hr(self, i: int) -> Tensor:
        img = _load_rgb(self.paths[i])
        s = self.hr_size
        if self.crop == "ready":
            if tuple(img.shape[1:]) != (s, s):
                raise DataError(f"{self.paths[i]} is {img.shape[1]}×{img.shape[2]}; a ready HR crop must be {s}×{s}")
            return img
        h, w = img.shape[1:]
        if (h, w) != (218, 178):
            raise DataError(f"{self.paths[i]} is {h}×{w}; img_align_celeba images are 218×178 (height × width)")
        return imresize(img[:, 20:198, :], size=(s, s))

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        hr = self.hr(i)
        return hr, make_lr(hr)
