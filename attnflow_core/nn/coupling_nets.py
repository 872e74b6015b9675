"""Networks that couplings use to predict their parameters, and the factory type couplings accept.

A *net factory* is any callable ``factory(in_channels, out_channels) -> nn.Module`` whose module maps
``(B, in, H, W)`` to ``(B, out, H, W)``. Couplings call it once at construction; the defaults below
are the multi-scale family's networks (same modules, same state-dict keys).
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .convs import NormConv2d, ZeroConv2d

NetFactory = Callable[[int, int], nn.Module]


class AffineNet(nn.Module):
    """Glow / mARFlow coupling network: conv3×3 → ReLU → conv1×1 → ReLU → zero conv3×3.

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018; Mahajan et al., "Normalizing flows with
    multiscale autoregressive priors" (mARFlow), CVPR 2020.
    """

    def __init__(self, cin: int, cout: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(NormConv2d(cin, hidden, 3), nn.ReLU(),
                                 NormConv2d(hidden, hidden, 1), nn.ReLU(),
                                 ZeroConv2d(hidden, cout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def affine_net(hidden: int) -> NetFactory:
    """Factory of :class:`AffineNet` with ``hidden`` channels."""
    return lambda cin, cout: AffineNet(cin, cout, hidden)
