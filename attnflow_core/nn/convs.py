"""Convolutions of Glow-family networks: the zero-initialised output conv and the data-normalised conv."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .norm import DataInitAffine


class ZeroConv2d(nn.Module):
    """3×3 conv on the input padded by one pixel of ``pad_value`` (0: Glow's; 1: Full-Glow's), zero-initialised,
    output scaled by ``exp(3·logs)``: the flow starts at identity.

    References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    def __init__(self, cin: int, cout: int, logscale_factor: float = 3.0, pad_value: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.factor = logscale_factor
        self.pad_value = float(pad_value)

    def forward(self, x: Tensor) -> Tensor:
        # the output scale is folded into weight and bias: one conv instead of conv + multiply
        s = torch.exp(self.logs * self.factor).view(-1)
        w, b = self.conv.weight * s.view(-1, 1, 1, 1), self.conv.bias * s
        if self.pad_value == 0.0:
            return F.conv2d(x, w, b, padding=1)
        return F.conv2d(F.pad(x, [1, 1, 1, 1], value=self.pad_value), w, b)


class NormConv2d(nn.Module):
    """Bias-free conv followed by a data-initialised per-channel affine normalisation (Glow's NN).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018 (coupling network with ActNorm after each conv).
    """

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        nn.init.normal_(self.conv.weight, std=0.05)
        self.norm = DataInitAffine(cout)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not self.norm.is_initialized():
            with torch.no_grad():
                self.norm.initialize(self.conv(x))
        # conv(x, w)·s + b == conv(x, w·s) + b: fold the affine into the conv (one op, not three)
        w = self.conv.weight * torch.exp(self.norm.log_scale).view(-1, 1, 1, 1)
        return F.conv2d(x, w, self.norm.bias.view(-1), padding=self.conv.padding)
