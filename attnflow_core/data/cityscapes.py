"""Cityscapes label → photo pairs, read from the user's own copy (Cityscapes may not be redistributed:
nothing of it is ever downloaded or committed here).

Two layouts are recognised under the root or its ``cityscapes/`` folder (``layout="auto"`` picks whichever
is there; the official one first):

* ``official`` -- ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/<...>_gtFine_{color,labelIds}.png`` (also under ``leftImg8bit_trainvaltest/`` and
  ``gtFine_trainvaltest/``), paired by the stem before ``_leftImg8bit`` / ``_gtFine``. Every photo needs its
  label and every label its photo: unpaired files are an error that names them.
* ``pix2pix`` -- ``<split>/<n>.jpg``: one 512×256 JPEG per pair, the photo in the
  left half and the colour label in the right half; ``val`` and ``test`` both name the held-out folder;
  files are sorted numerically.

Label modes:

* ``color`` (Full-Glow compatible, as in MoeinSorkhei/glow2): the colour label PNG with its alpha channel
  dropped, photo and label both resized with PIL bilinear to ``size × size`` → ``(3, S, S)`` uint8 each.
* ``onehot``: label IDs 0–33 (``_gtFine_labelIds.png``, resized nearest-neighbour) as 34 one-hot channels,
  stored as uint8 0/255 so that the label goes through the same 8-bit dequantisation as the photo.
  pix2pix labels are JPEG colours: they are mapped to the nearest palette colour, and a colour shared by
  several IDs (black: IDs 0–4) to the smallest of them.

:class:`CityscapesPairs` is a map-style dataset (one pair decoded per access; stream it with
:class:`~attnflow_core.data.batches.DatasetBatches`).
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

# (id, name, colour) of cityscapesScripts' labels.py, IDs 0..33 (the license plate, ID -1, never occurs)
LABELS: tuple[tuple[int, str, tuple[int, int, int]], ...] = (
    (0, "unlabeled", (0, 0, 0)), (1, "ego vehicle", (0, 0, 0)), (2, "rectification border", (0, 0, 0)),
    (3, "out of roi", (0, 0, 0)), (4, "static", (0, 0, 0)), (5, "dynamic", (111, 74, 0)), (6, "ground", (81, 0, 81)),
    (7, "road", (128, 64, 128)), (8, "sidewalk", (244, 35, 232)), (9, "parking", (250, 170, 160)),
    (10, "rail track", (230, 150, 140)), (11, "building", (70, 70, 70)), (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)), (14, "guard rail", (180, 165, 180)), (15, "bridge", (150, 100, 100)),
    (16, "tunnel", (150, 120, 90)), (17, "pole", (153, 153, 153)), (18, "polegroup", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)), (20, "traffic sign", (220, 220, 0)), (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)), (23, "sky", (70, 130, 180)), (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)), (26, "car", (0, 0, 142)), (27, "truck", (0, 0, 70)), (28, "bus", (0, 60, 100)),
    (29, "caravan", (0, 0, 90)), (30, "trailer", (0, 0, 110)), (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)), (33, "bicycle", (119, 11, 32)),
)
NUM_IDS = len(LABELS)
MODES = ("color", "onehot")
LAYOUTS = ("auto", "official", "pix2pix")
LABEL_CHANNELS = {"color": 3, "onehot": NUM_IDS}
_PHOTO, _GT = "_leftImg8bit.png", "_gtFine_"
HOW_TO_GET = ("Cityscapes cannot be redistributed: register at https://www.cityscapes-dataset.com, download "
              "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip, unzip both into one folder and pass it as "
              "the root (or use the pix2pix 'cityscapes' pairs).")


def _official_dirs(root: Path) -> tuple[Path, Path] | None:
    for base in (root, root / "cityscapes"):
        for photos, labels in ((base / "leftImg8bit", base / "gtFine"),
                               (base / "leftImg8bit_trainvaltest" / "leftImg8bit", base / "gtFine_trainvaltest" / "gtFine")):
            if photos.is_dir() and labels.is_dir():
                return photos, labels
    return None


def _pix2pix_dir(root: Path, split: str) -> Path | None:
    names = ("val", "test") if split in ("val", "test") else (split,)
    for base in (root, root / "cityscapes"):
        for n in names:
            if (base / n).is_dir() and any((base / n).glob("*.jpg")):
                return base / n
    return None


def _stem_key(p: Path) -> tuple[int, int | str]:
    return (0, int(p.stem)) if p.stem.isdigit() else (1, p.stem)


def _listing(paths: list[str], limit: int = 5) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def official_pairs(photo_dir: Path, label_dir: Path, split: str, mode: str) -> list[tuple[Path, Path]]:
    """``(photo, label)`` paths of one split, paired by stem; unpaired files raise :class:`DataError`."""
    suffix = "color.png" if mode == "color" else "labelIds.png"
    photos = {p.name[: -len(_PHOTO)]: p for p in (photo_dir / split).glob(f"*/*{_PHOTO}")}
    labels = {p.name[: -len(_GT + suffix)]: p for p in (label_dir / split).glob(f"*/*{_GT}{suffix}")}
    if not photos and not labels:
        raise DataNotFoundError(f"no Cityscapes {split} pairs under {photo_dir / split} and {label_dir / split} "
                                f"(looked for */*{_PHOTO} and */*{_GT}{suffix}). {HOW_TO_GET}")
    no_label = sorted(str(photos[s].relative_to(photo_dir)) for s in photos.keys() - labels.keys())
    no_photo = sorted(str(labels[s].relative_to(label_dir)) for s in labels.keys() - photos.keys())
    if no_label or no_photo:
        msg = [f"unpaired files in the Cityscapes {split} split (mode {mode!r}):"]
        if no_label:
            msg.append(f"{len(no_label)} photo(s) under {photo_dir} without a *{_GT}{suffix}: {_listing(no_label)}")
        if no_photo:
            msg.append(f"{len(no_photo)} label(s) under {label_dir} without a *{_PHOTO}: {_listing(no_photo)}")
        raise DataError("\n  ".join(msg))
    return [(photos[s], labels[s]) for s in sorted(photos)]


def _resize(img, size: int, nearest: bool = False):
    from PIL import Image

    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR)


def _to_chw(img) -> Tensor:
    a = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None]))


def onehot(ids: np.ndarray, num: int = NUM_IDS, where: str = "label") -> Tensor:
    """Label IDs ``(H, W)`` → ``(num, H, W)`` uint8 one-hot with values 0/255."""
    if ids.min() < 0 or ids.max() >= num:
        bad = sorted({int(v) for v in np.unique(ids) if not 0 <= v < num})
        raise DataError(f"{where}: label IDs {bad[:10]} outside 0..{num - 1}")
    return torch.from_numpy((np.arange(num)[:, None, None] == ids[None]).astype(np.uint8) * 255)


def colors_to_ids(rgb: np.ndarray) -> np.ndarray:
    """Nearest palette colour → label ID (a shared colour → the smallest ID), for ``(H, W, 3)`` uint8."""
    palette = np.array([c for _, _, c in LABELS], dtype=np.int64)
    d = ((rgb[..., None, :].astype(np.int64) - palette) ** 2).sum(-1)
    return d.argmin(-1)  # argmin returns the first (smallest) ID among equal distances


class CityscapesPairs(Dataset):
    """Map-style Cityscapes pairs ``(photo (3, S, S), label (C, S, S))``, both uint8 (module docstring).

    ``limit`` keeps the first ``limit`` pairs (sorted order), for quick checks.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", layout: str = "auto", mode: str = "color",
                 size: int = 256, limit: int | None = None) -> None:
        if mode not in MODES:
            raise DataError(f"mode must be one of {MODES}, got {mode!r}")
        if layout not in LAYOUTS:
            raise DataError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if split not in ("train", "val", "test"):
            raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.root, self.split, self.mode, self.size = Path(root).expanduser(), split, mode, int(size)
        if not self.root.is_dir():
            raise DataNotFoundError(f"Cityscapes root {self.root} does not exist. {HOW_TO_GET}")
        dirs = _official_dirs(self.root) if layout in ("auto", "official") else None
        if dirs is not None:
            if split == "test":
                raise DataError("the official Cityscapes test labels are placeholders (not public); use 'val' as "
                                "the held-out split, as Full-Glow and the AttnFlow paper do")
            self.layout = "official"
            self.items: list = official_pairs(*dirs, split, mode)
        else:
            folder = _pix2pix_dir(self.root, split) if layout in ("auto", "pix2pix") else None
            if folder is None:
                raise DataNotFoundError(
                    f"no Cityscapes data for split {split!r} under {self.root}: looked for the official layout "
                    f"(leftImg8bit/ + gtFine/, or leftImg8bit_trainvaltest/ + gtFine_trainvaltest/, also under "
                    f"cityscapes/) and the pix2pix layout ({split}/*.jpg or cityscapes/{split}/*.jpg"
                    f"{', val/ or test/' if split != 'train' else ''}). {HOW_TO_GET}")
            self.layout = "pix2pix"
            self.items = sorted(folder.glob("*.jpg"), key=_stem_key)
        if limit is not None:
            self.items = self.items[:limit]
        self.label_channels = LABEL_CHANNELS[mode]

    def __len__(self) -> int:
        return len(self.items)

    def _official(self, photo_path: Path, label_path: Path):
        photo = decode_image(photo_path).convert("RGB")
        label = decode_image(label_path)
        if self.mode == "color":
            if label.mode not in ("RGB", "RGBA", "P"):
                raise DataError(f"{label_path}: a colour label needs 3 or 4 channels (RGB/RGBA), got PIL mode "
                                f"{label.mode!r}; is this a labelIds file? Use mode='onehot' for those")
            return photo, label.convert("RGB")  # RGBA → RGB drops the alpha channel
        if label.mode not in ("L", "I", "P", "I;16"):
            raise DataError(f"{label_path}: labelIds must be a single-channel image, got PIL mode {label.mode!r}")
        return photo, label

    def _pix2pix(self, path: Path):
        pair = decode_image(path).convert("RGB")
        w, h = pair.size
        if w != 2 * h:
            raise DataError(f"{path}: a pix2pix pair is two {h}×{h} halves side by side (photo | label), got {w}×{h}")
        return pair.crop((0, 0, h, h)), pair.crop((h, 0, w, h))

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        item = self.items[i]
        photo, label = self._official(*item) if self.layout == "official" else self._pix2pix(item)
        if photo.size != label.size:
            raise DataError(f"photo and label of pair {i} ({item}) differ in size: {photo.size} vs {label.size}")
        x = _to_chw(_resize(photo, self.size))
        if self.mode == "color":
            return x, _to_chw(_resize(label, self.size))
        if self.layout == "official":
            ids = np.asarray(_resize(label, self.size, nearest=True)).astype(np.int64)
        else:
            ids = colors_to_ids(np.asarray(_resize(label, self.size, nearest=True)))
        return x, onehot(ids, where=str(item))


def stack_pairs(ds: Dataset, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """All (or the first ``limit``) pairs of a map-style dataset as two stacked uint8 tensors."""
    n = len(ds) if limit is None else min(limit, len(ds))
    pairs = [ds[i] for i in range(n)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
