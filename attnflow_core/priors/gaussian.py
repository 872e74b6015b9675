"""Glow's learned Gaussian priors: the top-level one and the split prior conditioned on the kept half."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn.convs import ZeroConv2d
from .base import GaussianPrior


class LearnedGaussianPrior(GaussianPrior):
    """Top-level Glow prior: a learned per-channel Gaussian, zero-initialised (so N(0, I) at start).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.mean = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_std = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def gaussian_params(self, shape: tuple[int, ...], context: Tensor | None,
                        cond: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.mean.expand(shape), self.log_std.expand(shape)


class SplitGaussianPrior(GaussianPrior):
    r"""Glow's learned split prior: :math:`z \sim \mathcal N(\mu(h), e^{2\log\sigma(h)})` with
    :math:`(\mu, \log\sigma)` from a zero-initialised 3×3 conv of the kept half ``h`` (the context).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018.
    """

    def __init__(self, context_channels: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = ZeroConv2d(context_channels, 2 * channels)

    def gaussian_params(self, shape: tuple[int, ...], context: Tensor | None,
                        cond: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.conv(self._need(context, "kept half as context"))
        return h[:, 0::2], h[:, 1::2]
