"""A **stand-in** label → photo task that needs no download, for smoke runs of the Cityscapes table.

It is not Cityscapes and its numbers say nothing about Cityscapes. Built from the two photographs bundled
with scikit-learn (``china.jpg``, ``flower.jpg``; 640×427): both are downscaled by 2 (PIL bilinear), blurred
and colour-quantised together into :data:`N_CLASSES` regions (PIL median cut over both photos, so a region
means the same colour cluster in each; a 5×5 mode filter against speckle); region ``k`` (ordered by
brightness) is painted with a Cityscapes palette colour (:data:`CLASS_COLORS`), giving a colour
"segmentation" of the photo. Pairs are seeded random ``size × size`` crops of photo and
label: the training split from the left 75 % of each image, the held-out split from the right 25 %.
``mode="onehot"`` gives the region IDs as one-hot channels (uint8 0/255) instead of colours.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..core.errors import DataError
from .cityscapes import onehot
from .paired import PairedImages

N_CLASSES = 8
# sky, sidewalk, terrain, road, vegetation, building, car, truck: brightest region first
CLASS_COLORS = ((70, 130, 180), (244, 35, 232), (152, 251, 152), (128, 64, 128), (107, 142, 35), (70, 70, 70),
                (0, 0, 142), (0, 0, 70))
NAME = "standin_label2photo"
NOTE = ("stand-in, not Cityscapes: crops of scikit-learn's two bundled photos with a colour-quantised "
        "segmentation painted in Cityscapes colours as the label map")
TRAIN_FRACTION = 0.75


@lru_cache(maxsize=2)
def _scenes() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(photo (H, W, 3) uint8, region IDs (H, W)) for each bundled photo. The photos are quantised
    together (side by side), so a region ID means the same colour cluster in both."""
    from PIL import Image, ImageFilter
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.BILINEAR)
              for img in load_sample_images().images]
    h = min(p.size[1] for p in photos)
    joint = Image.new("RGB", (sum(p.size[0] for p in photos), h))
    x = 0
    for p in photos:
        joint.paste(p.crop((0, 0, p.size[0], h)), (x, 0))
        x += p.size[0]
    q = joint.filter(ImageFilter.GaussianBlur(1.5)).quantize(
        colors=N_CLASSES, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = np.asarray(q.getpalette()[: 3 * N_CLASSES], dtype=np.float64).reshape(-1, 3)
    order = np.argsort(-(palette @ np.array([0.299, 0.587, 0.114])))  # brightest region first
    rank = np.zeros(256, dtype=np.int64)
    rank[order] = np.arange(len(order))
    idx, out, x = np.asarray(q, dtype=np.uint8), [], 0
    for p in photos:
        part = Image.fromarray(np.ascontiguousarray(idx[:, x:x + p.size[0]])).filter(ImageFilter.ModeFilter(5))
        out.append((np.asarray(p, dtype=np.uint8)[:h], rank[np.asarray(part)]))
        x += p.size[0]
    return tuple(out)


def load_standin(split: str = "train", size: int = 32, n: int | None = None, mode: str = "color",
                 seed: int = 0) -> PairedImages:
    """Paired stand-in data: photos ``(N, 3, S, S)`` and label maps ``(N, 3 or N_CLASSES, S, S)``, uint8.

    ``n`` crops in all (default 512 for train, 64 for the held-out split ``test``/``val``), half from each
    photo, at seeded positions (the split's region never overlaps the other split's).
    """
    if split not in ("train", "test", "val"):
        raise DataError(f"split must be 'train', 'test' or 'val', got {split!r}")
    if mode not in ("color", "onehot"):
        raise DataError(f"mode must be 'color' or 'onehot', got {mode!r}")
    n = n if n is not None else (512 if split == "train" else 64)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    palette = np.asarray(CLASS_COLORS, dtype=np.uint8)
    xs, cs = [], []
    scenes = _scenes()
    for k, (photo, ids) in enumerate(scenes):
        h, w = ids.shape
        cut = int(TRAIN_FRACTION * w)
        lo, hi = (0, cut - size) if split == "train" else (cut, w - size)
        if hi < lo or h < size:
            raise DataError(f"crops of {size}×{size} do not fit the stand-in's {h}×{w} photos ({split} region)")
        count = n // len(scenes) + (1 if k < n % len(scenes) else 0)
        for top, left in zip(rng.integers(0, h - size + 1, count), rng.integers(lo, hi + 1, count)):
            p = photo[top:top + size, left:left + size]
            lab = ids[top:top + size, left:left + size]
            xs.append(torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1))))
            cs.append(torch.from_numpy(np.ascontiguousarray(palette[lab].transpose(2, 0, 1))) if mode == "color"
                      else onehot(lab, N_CLASSES, "stand-in label"))
    return PairedImages(torch.stack(xs), torch.stack(cs), NAME, split, NOTE)
