"""Batches the benchmarks time on: dequantised real images in [-1/2, 1/2] when the data root has them, else
uniform noise images of the same shape (timings do not depend on content)."""
from __future__ import annotations

import torch


def dequantised_batches(dataset: str, n: int, batch: int, shape: tuple[int, int, int], seed: int = 0):
    """``n`` batches of ``batch`` images of ``shape = (C, H, W)`` from ``dataset`` (top-left ``H×W`` crops; the
    channels repeated when ``C`` exceeds the data's), and a label saying where they came from."""
    c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    try:
        from attnflow_core.data import load_dataset

        imgs = load_dataset(dataset, "train", limit=n * batch).images[:, :, :h, :w].float()
        have = imgs.shape[1]
        imgs = imgs.repeat(1, -(-c // have), 1, 1)[:, :c]
        src = f"{dataset} images" + (f" (channels repeated to {c})" if c > have else "")
    except Exception:
        imgs = torch.randint(0, 256, (n * batch, c, h, w), generator=g).float()
        src = f"uniform noise images (no {dataset} found)"
    x = (imgs + torch.rand(imgs.shape, generator=g)) / 256 - 0.5
    return [x[i * batch:(i + 1) * batch] for i in range(n)], src
