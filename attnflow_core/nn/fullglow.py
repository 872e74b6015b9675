"""Full-Glow's plain networks: what its conditional ActNorm, 1×1 conv and coupling use to read the left
Glow's activation, its coupling network, and the zero-initialised conv that pads with ones.

Sizes follow the reference code (``MoeinSorkhei/glow2``, ``models/glow/cond_net.py`` and ``flow.py``)
exactly, so that parameter counts match the paper's Table 5 to the last parameter (155,335,008 at
L=4, K=16, 256×256). The networks are written here from that description; none of its code is used.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError
from .convs import ZeroConv2d


class OnesPadZeroConv2d(ZeroConv2d):
    r"""Full-Glow's ``ZeroInitConv2d``: :class:`~attnflow_core.nn.convs.ZeroConv2d` with the input padded by one
    pixel **with the value 1** (not 0).

    The one-padding makes the output depend on the position near the border even for an all-zero input,
    which is how Full-Glow's top-level prior (this conv applied to zeros) varies at the image border.

    References: Sorkhei et al., "Full-Glow: Fully conditional Glow for more realistic image generation",
    GCPR 2021 (reference code ``models/glow/flow.py``); Kingma & Dhariwal, "Glow", NeurIPS 2018.
    """

    def __init__(self, cin: int, cout: int, logscale_factor: float = 3.0) -> None:
        super().__init__(cin, cout, logscale_factor, pad_value=1.0)


class FullGlowCouplingNet(nn.Module):
    """Coupling network of both Glows: 3×3 conv (pad 1) → ReLU → 1×1 conv → ReLU → :class:`OnesPadZeroConv2d`.
    The first two convs have biases (zero at start) and N(0, 0.05) weights; the last one starts at zero.

    References: Sorkhei et al., "Full-Glow", GCPR 2021 (reference ``AffineCoupling.net``).
    """

    def __init__(self, cin: int, cout: int, hidden: int = 512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.normal_(conv.weight, 0.0, 0.05)
            nn.init.zeros_(conv.bias)
        self.out = OnesPadZeroConv2d(hidden, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.conv2(F.relu(self.conv1(x)))))


class CouplingCondNet(nn.Module):
    """Reads the left Glow's step output for a right-Glow coupling: 3×3 conv ``cc → hidden`` → ReLU →
    3×3 conv ``hidden → cout`` → ReLU (both padded by one pixel, PyTorch's default initialisation).

    References: Sorkhei et al., "Full-Glow", GCPR 2021 (reference ``CouplingCondNet``).
    """

    def __init__(self, cond_channels: int, cout: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, cout, 3, padding=1), nn.ReLU())

    def forward(self, cond: Tensor) -> Tensor:
        return self.net(cond)


class GlobalCondNet(nn.Module):
    r"""A feature map ``(B, Cc, H, W)`` → one parameter vector per sample ``(B, out)``: Full-Glow's ActNorm /
    1×1-conv conditioner.

    Conv part: 1×1 conv ``Cc → 8`` → ReLU → valid 3×3 conv ``8 → 4`` → ReLU → valid 3×3 conv ``4 → 2`` →
    ReLU, flattened to :math:`2(H-4)(W-4)` features. MLP: Linear → 32 → ReLU → 64 → ReLU → 48 → ReLU →
    a last Linear to ``out`` whose **weight starts at zero**, so the output starts at the last bias (which
    the owning layer initialises: data statistics for ActNorm, the LU factors of a random rotation for
    the 1×1 conv).

    The first Linear sees every position, so the network is built for one spatial size ``H × W`` and
    holds most of Full-Glow's parameters (30,752 inputs at 128×128).

    References: Sorkhei et al., "Full-Glow", GCPR 2021 (reference ``ConvNet`` + ``LinearNet``).
    """

    def __init__(self, cond_channels: int, height: int, width: int, out_features: int) -> None:
        super().__init__()
        if height < 5 or width < 5:
            raise FlowError(f"Full-Glow's ActNorm/1×1 conditioning net needs maps of at least 5×5 (two valid 3×3 "
                            f"convs); this level is {height}×{width}: use fewer levels or larger images")
        self.height, self.width = height, width
        self.conv = nn.Sequential(nn.Conv2d(cond_channels, 8, 1), nn.ReLU(),
                                  nn.Conv2d(8, 4, 3), nn.ReLU(),
                                  nn.Conv2d(4, 2, 3), nn.ReLU())
        self.mlp = nn.Sequential(nn.Linear(2 * (height - 4) * (width - 4), 32), nn.ReLU(),
                                 nn.Linear(32, 64), nn.ReLU(),
                                 nn.Linear(64, 48), nn.ReLU())
        self.last = nn.Linear(48, out_features)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, cond: Tensor) -> Tensor:
        if tuple(cond.shape[-2:]) != (self.height, self.width):
            raise FlowError(f"this conditioning net was built for {self.height}×{self.width} maps, got "
                            f"{cond.shape[-2]}×{cond.shape[-1]}: Full-Glow models are built for one image size")
        return self.last(self.mlp(self.conv(cond).flatten(1)))
