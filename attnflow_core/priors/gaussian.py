"""Glow's learned Gaussian priors: the top-level one and the split prior conditioned on the kept half."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn.convs import ZeroConv2d
from .base import Prior, gaussian_log_prob, gaussian_sample


class LearnedGaussianPrior(Prior):
    """Top-level Glow prior: a learned per-channel Gaussian, zero-initialised (so N(0, I) at start).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.mean = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_std = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def log_prob(self, z: Tensor, context: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        return gaussian_log_prob(z, self.mean.expand_as(z), self.log_std.expand_as(z))

    def sample(self, shape: tuple[int, int, int, int], context: Tensor | None = None, cond: Tensor | None = None,
               temperature: float = 1.0) -> Tensor:
        return gaussian_sample(self.mean.expand(shape), self.log_std.expand(shape), temperature)


class SplitGaussianPrior(Prior):
    r"""Glow's learned split prior: :math:`z \sim \mathcal N(\mu(h), e^{2\log\sigma(h)})` with
    :math:`(\mu, \log\sigma)` from a zero-initialised 3×3 conv of the kept half ``h`` (the context).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018.
    """

    def __init__(self, context_channels: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = ZeroConv2d(context_channels, 2 * channels)

    def _params(self, context: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.conv(self._need(context, "kept half as context"))
        return h[:, 0::2], h[:, 1::2]

    def log_prob(self, z: Tensor, context: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        mean, log_std = self._params(context)
        return gaussian_log_prob(z, mean, log_std)

    def sample(self, shape: tuple[int, int, int, int], context: Tensor | None = None, cond: Tensor | None = None,
               temperature: float = 1.0) -> Tensor:
        mean, log_std = self._params(context)
        return gaussian_sample(mean, log_std, temperature)
