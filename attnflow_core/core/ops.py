"""Small tensor helpers used across the package."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum over every dimension but the first: ``(B, ...) -> (B,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def flatten_latents(zs: Sequence[Tensor]) -> Tensor:
    """Concatenate per-level latents into one ``(B, D)`` tensor."""
    return torch.cat([z.reshape(z.shape[0], -1) for z in zs], dim=1)
