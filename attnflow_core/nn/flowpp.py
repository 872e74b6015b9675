r"""Flow++'s coupling network: gated residual convs with self-attention, and its mixture head.

Every conv and linear map of the network is weight-normalised, :math:`W = g\,v/\lVert v\rVert` per output
row (``torch.nn.utils.parametrizations.weight_norm``, keys ``parametrizations.weight.original0`` = ``g``
and ``original1`` = ``v``), as in Flow++ and the mARFlow code (visinf/mar-scf,
``flow_modules/mixlogcdf_nn.py``), which also weight-normalises the per-channel rescale of ``a``.

References: Ho et al., "Flow++: Improving Flow-Based Generative Models with Variational Dequantization
and Architecture Design", ICML 2019; Salimans et al., "PixelCNN++", ICLR 2017 (gated conv, concat-ELU);
Salimans & Kingma, "Weight Normalization", NeurIPS 2016.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..core.errors import FlowError


def wn_conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    """Weight-normalised ``kernel×kernel`` conv with "same" padding (PyTorch's default init of ``v``, ``g = ‖v‖``)."""
    return weight_norm(nn.Conv2d(cin, cout, kernel, padding=kernel // 2))


def wn_linear(cin: int, cout: int, bias: bool = True) -> nn.Linear:
    """Weight-normalised linear map (rows of ``W`` normalised)."""
    return weight_norm(nn.Linear(cin, cout, bias=bias))


class Rescale(nn.Module):
    """Per-channel gain ``w_c`` on ``(B, C, H, W)`` (weight ``(C, 1, 1)``, so it can be weight-normalised)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x


def _concat_elu(x: Tensor) -> Tensor:
    return F.elu(torch.cat([x, -x], dim=1))


class GatedConv(nn.Module):
    """PixelCNN++ gated residual conv: concat-ELU → conv3×3 → concat-ELU → dropout → conv1×1 → GLU."""

    def __init__(self, ch: int, dropout: float) -> None:
        super().__init__()
        self.conv = wn_conv(2 * ch, ch, 3)
        self.drop = nn.Dropout2d(dropout)
        self.gate = wn_conv(2 * ch, 2 * ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.gate(self.drop(_concat_elu(self.conv(_concat_elu(x)))))
        a, b = h.chunk(2, dim=1)
        return a * torch.sigmoid(b)


class GatedSelfAttention(nn.Module):
    """Multi-head self-attention over positions with sinusoidal position encoding and a GLU gate.

    ``in_proj`` rows are ``[q; k; v]`` (each ``C`` rows, heads contiguous within each)."""

    def __init__(self, ch: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if ch % heads:
            raise FlowError(f"hidden width {ch} must be divisible by the {heads} attention heads of the coupling net")
        self.heads = heads
        self.dropout = dropout
        self.in_proj = wn_linear(ch, 3 * ch, bias=False)
        self.gate = wn_linear(ch, 2 * ch)

    @staticmethod
    def _position_encoding(n: int, ch: int, like: Tensor) -> Tensor:
        pos = torch.arange(n, dtype=like.dtype, device=like.device).unsqueeze(1)
        half = ch // 2
        inv = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=like.dtype, device=like.device) / max(half - 1, 1))
        enc = torch.cat([torch.sin(pos * inv), torch.cos(pos * inv)], dim=1)
        return F.pad(enc, (0, ch % 2))

    def forward(self, x: Tensor) -> Tensor:  # x: (B, L, C)
        b, n, c = x.shape
        x = x + self._position_encoding(n, c, x)
        q, k, v = self.in_proj(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        h = self.gate(h.transpose(1, 2).reshape(b, n, c))
        a, g = h.chunk(2, dim=-1)
        return a * torch.sigmoid(g)


class ConvAttnBlock(nn.Module):
    """One Flow++ block: gated conv (residual) → LayerNorm → [self-attention (residual) → LayerNorm]."""

    def __init__(self, ch: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.conv = GatedConv(ch, dropout)
        self.norm1 = nn.LayerNorm(ch)
        self.attn = GatedSelfAttention(ch, dropout=dropout) if attention else None
        self.norm2 = nn.LayerNorm(ch) if attention else None

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        x = (self.conv(x) + x).permute(0, 2, 3, 1)  # channels last for the norms
        x = self.norm1(x)
        if self.attn is not None:
            seq = x.reshape(b, h * w, c)
            x = self.norm2(self.attn(seq) + seq).view(b, h, w, c)
        return x.permute(0, 3, 1, 2)


class MixLogisticNet(nn.Module):
    r"""Flow++ coupling network: conv3×3 in, ``blocks`` gated conv + attention blocks, conv3×3 out.

    The out conv emits, per transformed channel, ``(a, t, logit π_1..K, μ_1..K, log s_1..K)``
    (channel ``j·cout + c`` is quantity ``j`` of channel ``c``); ``a = w_c·tanh(·)`` with the
    weight-normalised gain ``w`` (starts at 1) and ``log s`` is clamped below at −7.

    Initialisation: the mixture rows (``π, μ, log s``) keep PyTorch's random default (``v`` uniform,
    ``g = ‖v‖``, random bias), as the reference does, so the ``K`` components differ from step 0 and get
    different gradients (a zero-initialised out conv would make them identical forever: equal
    parameters, equal gradients). The ``a`` and ``t`` rows start at ``g = 0`` and zero bias, so
    ``a = t = 0`` (no rescale, no shift) at initialisation while ``g`` still receives gradient.
    """

    def __init__(self, cin: int, cout: int, hidden: int, components: int, blocks: int,
                 dropout: float, attention: bool = True) -> None:
        super().__init__()
        self.cout, self.k = cout, components
        self.inp = wn_conv(cin, hidden, 3)
        self.blocks = nn.ModuleList(ConvAttnBlock(hidden, dropout, attention) for _ in range(blocks))
        self.out = wn_conv(hidden, cout * (2 + 3 * components), 3)
        with torch.no_grad():  # a and t rows: zero (see the class docstring)
            self.out.parametrizations.weight.original0[: 2 * cout].zero_()
            self.out.bias[: 2 * cout].zero_()
        self.rescale = weight_norm(Rescale(cout))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        h = self.inp(x)
        for blk in self.blocks:
            h = blk(h)
        b, _, hh, ww = h.shape
        h = self.out(h).view(b, 2 + 3 * self.k, self.cout, hh, ww)
        a, t, logit_pi, mu, log_s = h.split((1, 1, self.k, self.k, self.k), dim=1)
        a = self.rescale(torch.tanh(a[:, 0]))
        return a, t[:, 0], logit_pi, mu, log_s.clamp(min=-7.0)
