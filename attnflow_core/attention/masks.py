"""Binary masks of Fig. 2, as float tensors of shape (C, H, W).

A 1 marks the *masked* half ``x1`` (the part the attention weights are computed
from, passed through unchanged or by a learned scale); a 0 marks ``x2``, the
half the attention weights act on.

* ``"checkerboard"`` -- the paper's spatial-channel checkerboard, ``(c + h + w) mod 2 == 0``;
* ``"spatial"``      -- spatial checkerboard (RealNVP), ``(h + w) mod 2 == 0`` in every channel;
* ``"channel"``      -- channel-wise (RealNVP/Glow): the first ``ceil(C/2)`` channels;
* ``"random"``       -- a fixed, seeded Bernoulli(1/2) pattern (reproducible from ``seed``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.errors import FlowError

MASK_KINDS = ("checkerboard", "spatial", "channel", "random")


def make_mask(kind: str, channels: int, height: int, width: int, seed: int = 0) -> Tensor:
    """Build mask ``kind`` for a ``(channels, height, width)`` feature map."""
    if kind not in MASK_KINDS:
        raise FlowError(f"unknown mask {kind!r}; choose one of {MASK_KINDS}")
    if min(channels, height, width) < 1:
        raise FlowError(f"mask shape must be positive, got {(channels, height, width)}")
    c = torch.arange(channels).view(-1, 1, 1)
    h = torch.arange(height).view(1, -1, 1)
    w = torch.arange(width).view(1, 1, -1)
    if kind == "checkerboard":
        m = (c + h + w) % 2 == 0
    elif kind == "spatial":
        m = ((h + w) % 2 == 0).expand(channels, height, width)
    elif kind == "channel":
        if channels < 2:
            raise FlowError("the channel-wise mask needs at least 2 channels")
        m = (c < (channels + 1) // 2).expand(channels, height, width)
    else:
        n = channels * height * width
        if n < 2:
            raise FlowError("a random mask needs at least 2 elements")
        g = torch.Generator().manual_seed(seed)
        # exactly half (rounded up) masked, at random places: never all-0 or all-1
        perm = torch.randperm(n, generator=g)
        m = torch.zeros(n, dtype=torch.bool)
        m[perm[: (n + 1) // 2]] = True
        m = m.view(channels, height, width)
    return m.to(torch.get_default_dtype()).contiguous()
