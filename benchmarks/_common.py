"""What several benchmarks share: the batches they time on (dequantised real images in [-1/2, 1/2] when the
data root has them, else uniform noise images of the same shape: timings do not depend on content) and the
round-robin timing of their variants."""
from __future__ import annotations

from collections.abc import Callable

import torch

from attnflow_core.repro.timing import timed


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


def round_robin(variants: dict[str, Callable[[torch.Tensor], object]], data: list[torch.Tensor], warmup: int,
                device: torch.device, seed: int = 1000) -> dict[str, list[float]]:
    """Seconds of ``fn(x)`` per variant and batch, the variants interleaved batch by batch (so a slow spell of the
    machine hits all of them) and reseeded alike (same probes and random draws); the first ``warmup`` batches
    are not kept."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i, x in enumerate(data):
        for name, fn in variants.items():
            torch.manual_seed(seed + i)
            t = timed(lambda: fn(x), device)
            if i >= warmup:
                times[name].append(t)
    return times
