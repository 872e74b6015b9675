r"""Full-Glow's learned Gaussian priors (the same form in both Glows; neither looks at the other Glow).

Both predict a mean and a log-std with :class:`~attnflow_core.nn.fullglow.OnesPadZeroConv2d` (a
zero-initialised 3×3 conv on the input padded with ones) and split its output into two **contiguous**
halves, mean first. Sampling: :math:`z = \mu + \tau\,\sigma\,\varepsilon` (the reference uses
:math:`\tau = 1` for Cityscapes).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..nn.fullglow import OnesPadZeroConv2d
from .base import GaussianPrior


class OnesPadSplitPrior(GaussianPrior):
    r"""Split prior: :math:`z \sim \mathcal N(\mu(h), e^{2\log\sigma(h)})` with
    :math:`(\mu, \log\sigma)` = contiguous halves of ``OnesPadZeroConv2d(h)`` on the kept half ``h``.

    References: Sorkhei et al., "Full-Glow: Fully conditional Glow for more realistic image generation",
    GCPR 2021 (reference ``models/glow/block.py``); Kingma & Dhariwal, "Glow", NeurIPS 2018.
    """

    def __init__(self, context_channels: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = OnesPadZeroConv2d(context_channels, 2 * channels)

    def gaussian_params(self, shape: tuple[int, ...], context: Tensor | None,
                        cond: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.conv(self._need(context, "kept half as context"))
        return h[:, : self.channels], h[:, self.channels:]


class OnesPadTopPrior(GaussianPrior):
    r"""Top-level prior: ``OnesPadZeroConv2d(C → 2C)`` applied to an all-zero ``(B, C, H, W)`` map.

    The input is constant, so the prior is learned but input-independent: inside the map the mean and
    log-std are the conv's bias; in the one-pixel border ring the padding ones add a position-dependent
    term. It starts as N(0, I).

    References: Sorkhei et al., "Full-Glow", GCPR 2021 (reference ``models/glow/block.py``, last block).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = OnesPadZeroConv2d(channels, 2 * channels)

    def gaussian_params(self, shape: tuple[int, ...], context: Tensor | None,
                        cond: Tensor | None) -> tuple[Tensor, Tensor]:
        w = self.conv.conv.weight
        h = self.conv(torch.zeros((1, self.channels, *shape[-2:]), dtype=w.dtype, device=w.device))
        mean, log_std = h[:, : self.channels], h[:, self.channels:]
        return mean.expand(shape[0], -1, -1, -1), log_std.expand(shape[0], -1, -1, -1)
