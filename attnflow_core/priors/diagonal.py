"""A learned diagonal Gaussian with one mean and one log-std per latent dimension (i-ResNet's prior)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.errors import FlowError
from .base import GaussianPrior


class DiagonalGaussianPrior(GaussianPrior):
    """:math:`z \\sim \\mathcal N(\\mu, \\mathrm{diag}(e^{2\\log\\sigma}))` with ``μ`` and ``log σ`` of the full
    latent shape ``(C, H, W)``, zero-initialised (``N(0, I)`` at start); ignores ``context`` and ``cond``.

    References: Behrmann et al., "Invertible Residual Networks", ICML 2019 (its density model's prior).
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.mean = nn.Parameter(torch.zeros(1, *self.shape))
        self.log_std = nn.Parameter(torch.zeros(1, *self.shape))

    def gaussian_params(self, shape: tuple[int, ...], context: Tensor | None,
                        cond: Tensor | None) -> tuple[Tensor, Tensor]:
        if tuple(shape[1:]) != self.shape:
            raise FlowError(f"DiagonalGaussianPrior was built for latents of shape {self.shape}, got {tuple(shape[1:])}")
        return self.mean.expand(shape), self.log_std.expand(shape)
