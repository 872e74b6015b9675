"""Flow++'s coupling network: gated residual convs with self-attention, and its mixture head.

References: Ho et al., "Flow++: Improving Flow-Based Generative Models with Variational Dequantization
and Architecture Design", ICML 2019; Salimans et al., "PixelCNN++", ICLR 2017 (gated conv, concat-ELU).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError


def _concat_elu(x: Tensor) -> Tensor:
    return F.elu(torch.cat([x, -x], dim=1))


class GatedConv(nn.Module):
    """PixelCNN++ gated residual conv: concat-ELU → conv3×3 → concat-ELU → dropout → conv1×1 → GLU."""

    def __init__(self, ch: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * ch, ch, 3, padding=1)
        self.drop = nn.Dropout2d(dropout)
        self.gate = nn.Conv2d(2 * ch, 2 * ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.gate(self.drop(_concat_elu(self.conv(_concat_elu(x)))))
        a, b = h.chunk(2, dim=1)
        return a * torch.sigmoid(b)


class GatedSelfAttention(nn.Module):
    """Multi-head self-attention over positions with sinusoidal position encoding and a GLU gate."""

    def __init__(self, ch: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if ch % heads:
            raise FlowError(f"hidden width {ch} must be divisible by the {heads} attention heads of the coupling net")
        self.heads = heads
        self.dropout = dropout
        self.in_proj = nn.Linear(ch, 3 * ch, bias=False)
        self.gate = nn.Linear(ch, 2 * ch)

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
    """Flow++ coupling network: conv3×3 in, ``blocks`` gated conv + attention blocks, conv3×3 out."""

    def __init__(self, cin: int, cout: int, hidden: int, components: int, blocks: int,
                 dropout: float, attention: bool = True) -> None:
        super().__init__()
        self.cout, self.k = cout, components
        self.inp = nn.Conv2d(cin, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(ConvAttnBlock(hidden, dropout, attention) for _ in range(blocks))
        self.out = nn.Conv2d(hidden, cout * (2 + 3 * components), 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts at the identity map
        nn.init.zeros_(self.out.bias)
        self.rescale = nn.Parameter(torch.ones(1, cout, 1, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        h = self.inp(x)
        for blk in self.blocks:
            h = blk(h)
        b, _, hh, ww = h.shape
        h = self.out(h).view(b, 2 + 3 * self.k, self.cout, hh, ww)
        a, t, logit_pi, mu, log_s = h.split((1, 1, self.k, self.k, self.k), dim=1)
        a = self.rescale * torch.tanh(a[:, 0])
        return a, t[:, 0], logit_pi, mu, log_s.clamp(min=-7.0)
