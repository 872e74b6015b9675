"""Coupling layers of the paper's Table 1: affine (Glow) and mixture-of-logistics affine (Flow++)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FlowError, FlowLayer, check_cond, check_image, sum_except_batch
from .layers import ActNorm


class ZeroConv2d(nn.Module):
    """3×3 conv, zero-initialised, output scaled by ``exp(3·logs)`` (Glow): the flow starts at identity."""

    def __init__(self, cin: int, cout: int, logscale_factor: float = 3.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.factor = logscale_factor

    def forward(self, x: Tensor) -> Tensor:
        # the output scale is folded into weight and bias: one conv instead of conv + multiply
        s = torch.exp(self.logs * self.factor).view(-1)
        return F.conv2d(x, self.conv.weight * s.view(-1, 1, 1, 1), self.conv.bias * s, padding=1)


class NormConv2d(nn.Module):
    """Bias-free conv followed by a data-initialised per-channel affine normalisation (Glow's NN)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        nn.init.normal_(self.conv.weight, std=0.05)
        self.norm = ActNorm(cout)  # only its data-dependent init and parameters are used

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not self.norm.is_initialized():
            with torch.no_grad():
                self.norm.initialize(self.conv(x))
        # conv(x, w)·s + b == conv(x, w·s) + b: fold the affine into the conv (one op, not three)
        w = self.conv.weight * torch.exp(self.norm.log_scale).view(-1, 1, 1, 1)
        return F.conv2d(x, w, self.norm.bias.view(-1), padding=self.conv.padding)


class AffineNet(nn.Module):
    """Glow / mARFlow coupling network: conv3×3 → ReLU → conv1×1 → ReLU → zero conv3×3."""

    def __init__(self, cin: int, cout: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(NormConv2d(cin, hidden, 3), nn.ReLU(),
                                 NormConv2d(hidden, hidden, 1), nn.ReLU(),
                                 ZeroConv2d(hidden, cout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _Coupling(FlowLayer):
    """Shared split logic: ``x1 = x[:, :C//2]`` conditions, ``x2 = x[:, C//2:]`` is transformed."""

    def __init__(self, channels: int, cond_channels: int = 0) -> None:
        super().__init__()
        if channels < 2:
            raise FlowError(f"a coupling layer needs at least 2 channels, got {channels}")
        self.channels = channels
        self.c1 = channels // 2
        self.c2 = channels - self.c1
        self.cond_channels = cond_channels

    def _net_input(self, x1: Tensor, cond: Tensor | None) -> Tensor:
        return x1 if self.cond_channels == 0 else torch.cat([x1, cond], dim=1)

    def _check(self, x: Tensor, cond: Tensor | None) -> None:
        check_image(x, self.channels, f"{type(self).__name__} input")
        check_cond(cond, self.cond_channels, x, type(self).__name__)


class AffineCoupling(_Coupling):
    r"""Affine coupling (Table 1, Glow), optionally conditional (Table 1, SRFlow).

    :math:`(h_s, t) = \mathrm{NN}(x_1[, c])`, :math:`s = \sigma(h_s + 2)`;
    forward :math:`y_2 = s \odot x_2 + t`, :math:`y_1 = x_1`;
    inverse :math:`x_2 = (y_2 - t) / s`; log-det :math:`\sum \log s`.
    The network's last conv is zero-initialised, so the layer starts near identity.
    """

    def __init__(self, channels: int, hidden: int = 512, cond_channels: int = 0) -> None:
        super().__init__(channels, cond_channels)
        self.net = AffineNet(self.c1 + cond_channels, 2 * self.c2, hidden)

    def _params(self, x1: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.net(self._net_input(x1, cond))
        return h[:, 0::2], h[:, 1::2] + 2.0  # shift, scale logit

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, cond)
        x1, x2 = x[:, : self.c1], x[:, self.c1:]
        shift, logit = self._params(x1, cond)
        y2 = x2 * torch.sigmoid(logit) + shift
        return torch.cat([x1, y2], dim=1), sum_except_batch(F.logsigmoid(logit))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self._check(y, cond)
        y1, y2 = y[:, : self.c1], y[:, self.c1:]
        shift, logit = self._params(y1, cond)
        return torch.cat([y1, (y2 - shift) / torch.sigmoid(logit)], dim=1)


# ---------------------------------------------------------------------------------------
# Flow++ mixture-of-logistics coupling


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


def mixture_log_cdf_terms(x: Tensor, logit_pi: Tensor, mu: Tensor, log_s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""For :math:`F(x) = \sum_i \pi_i\,\sigma((x-\mu_i)e^{-\log s_i})`, return
    :math:`\log F`, :math:`\log(1-F)` and :math:`\log F'(x)` (all stable, in log space).
    Mixture components lie along dim 1."""
    log_pi = torch.log_softmax(logit_pi, dim=1)
    z = (x.unsqueeze(1) - mu) * torch.exp(-log_s)
    log_f = torch.logsumexp(log_pi + F.logsigmoid(z), dim=1)
    log_1mf = torch.logsumexp(log_pi + F.logsigmoid(-z), dim=1)
    log_pdf = torch.logsumexp(log_pi + F.logsigmoid(z) + F.logsigmoid(-z) - log_s, dim=1)
    return log_f, log_1mf, log_pdf


class MixLogisticCoupling(_Coupling):
    r"""Mixture-of-logistics affine coupling (Table 1, Flow++).

    :math:`(a, t, \pi, \mu, \log\hat s) = \mathrm{NN}(x_1[, c])` and
    :math:`F(x) = \sum_i \pi_i\,\sigma((x - \mu_i)/\hat s_i)`;
    forward :math:`y_2 = \sigma^{-1}(F(x_2))\,e^{a} + t`;
    log-det :math:`\sum \big[\log F'(x_2) - \log F(x_2) - \log(1 - F(x_2)) + a\big]`.
    Inverse: :math:`u = (y_2 - t)e^{-a}` then :math:`x_2 = F^{-1}(\sigma(u))` by bisection,
    inside a bracket that provably contains the root: since every component CDF is monotone,
    :math:`\min_i(\mu_i + \hat s_i u) \le x_2 \le \max_i(\mu_i + \hat s_i u)`.
    ``a = w·tanh(·)`` with a learned per-channel ``w`` (Flow++'s rescale).
    """

    def __init__(self, channels: int, hidden: int = 96, components: int = 32, blocks: int = 10,
                 dropout: float = 0.2, cond_channels: int = 0, attention: bool = True) -> None:
        super().__init__(channels, cond_channels)
        self.net = MixLogisticNet(self.c1 + cond_channels, self.c2, hidden, components, blocks, dropout, attention)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, cond)
        x1, x2 = x[:, : self.c1], x[:, self.c1:]
        a, t, logit_pi, mu, log_s = self.net(self._net_input(x1, cond))
        log_f, log_1mf, log_pdf = mixture_log_cdf_terms(x2, logit_pi, mu, log_s)
        y2 = (log_f - log_1mf) * torch.exp(a) + t
        logdet = sum_except_batch(log_pdf - log_f - log_1mf + a)
        return torch.cat([x1, y2], dim=1), logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self._check(y, cond)
        y1, y2 = y[:, : self.c1], y[:, self.c1:]
        a, t, logit_pi, mu, log_s = self.net(self._net_input(y1, cond))
        u = (y2 - t) * torch.exp(-a)  # target logit of F
        ends = mu + torch.exp(log_s) * u.unsqueeze(1)
        lo, hi = ends.min(dim=1).values, ends.max(dim=1).values
        iters = 100 if y.dtype == torch.float64 else 60
        for _ in range(iters):  # fixed count: no data-dependent host sync
            mid = 0.5 * (lo + hi)
            log_f, log_1mf, _ = mixture_log_cdf_terms(mid, logit_pi, mu, log_s)
            above = (log_f - log_1mf) > u
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        return torch.cat([y1, 0.5 * (lo + hi)], dim=1)
