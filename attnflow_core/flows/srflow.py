r"""SRFlow's layers: the unfactored 1×1 convolution, the affine injector and the conditional affine coupling.

SRFlow's affine layers share one form: a network gives a shift ``t`` (even output channels) and a raw
scale ``h`` (odd output channels), the scale is :math:`s = \sigma(h + 2) + \epsilon` with
:math:`\epsilon = 10^{-4}`, and the transform **adds the shift first**: :math:`y = (x + t)\odot s`.
So :math:`s \in (\epsilon, 1 + \epsilon)`: each layer can shrink a lot but grow by at most
:math:`1 + \epsilon`; at initialisation (zero last conv, ``h = 0``) it multiplies by
:math:`\sigma(2) + \epsilon \approx 0.8809`, not by 1.

The networks are Glow's (:class:`~attnflow_core.nn.AffineNet`: 3×3 conv → ActNorm → ReLU → 1×1 conv →
ActNorm → ReLU → zero-initialised 3×3 conv with an ``exp(3·logs)`` gain), hidden width 64 in SRFlow.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.errors import FlowError
from ..core.layer import FlowLayer, LayerExample
from ..core.ops import sum_except_batch
from ..nn.coupling_nets import NetFactory, affine_net
from .coupling import _Coupling


class InvConv1x1Full(FlowLayer):
    r"""Invertible 1×1 convolution with a full (not LU-factored) ``C×C`` weight, as in SRFlow.

    Forward :math:`y_{:,h,w} = W x_{:,h,w}`; inverse :math:`x = W^{-1} y` (``W`` inverted in float64);
    log-det :math:`H W \log|\det W|`. ``W`` starts as a random orthogonal matrix (QR of a Gaussian),
    so :math:`\log|\det W| = 0` at initialisation. Invertible as long as ``W`` stays non-singular,
    which training does not guarantee (the LU form of :class:`~attnflow_core.flows.InvConv1x1` keeps
    the log-det explicit instead); it is SRFlow's layer and its parameter count (``C²``).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018 (the unfactored variant, as used by Lugmayr et al.,
    "SRFlow", ECCV 2020).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))
        self.weight = nn.Parameter(q.to(torch.get_default_dtype()))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        y = torch.nn.functional.conv2d(x, self.weight.view(self.channels, self.channels, 1, 1))
        logdet = (x.shape[2] * x.shape[3]) * torch.linalg.slogdet(self.weight).logabsdet
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        w_inv = torch.linalg.inv(self.weight.double()).to(self.weight.dtype)
        return torch.nn.functional.conv2d(y, w_inv.view(self.channels, self.channels, 1, 1))

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"invconv_full": LayerExample(lambda: cls(4), (2, 4, 4, 4))}


def _shift_scale(h: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Even channels: shift; odd channels: ``sigmoid(h + 2) + eps`` (SRFlow's interleaved split)."""
    return h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2.0) + eps


class AffineInjector(FlowLayer):
    r"""SRFlow's affine injector: an elementwise affine map whose parameters come from ``cond`` alone.

    :math:`(t, h) = \mathrm{NN}(u)` with ``u`` the conditioning features, :math:`s = \sigma(h+2) + \epsilon`;
    forward :math:`y = (x + t)\odot s`; inverse :math:`x = y / s - t`;
    log-det :math:`\sum_{c,h,w} \log s` (``s`` does not depend on ``x``, so the Jacobian is diagonal).
    ``net(cond_channels, 2·channels)`` defaults to Glow's coupling net of width ``hidden``.

    References: Lugmayr et al., "SRFlow: Learning the Super-Resolution Space with Normalizing Flow", ECCV 2020
    (Eq. 6, the affine injector).
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 64, eps: float = 1e-4,
                 net: NetFactory | None = None) -> None:
        if cond_channels < 1:
            raise FlowError(f"the affine injector is conditioned on features; got cond_channels={cond_channels}")
        super().__init__(channels, cond_channels)
        self.eps = float(eps)
        self.net = (net or affine_net(hidden))(cond_channels, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        shift, scale = _shift_scale(self.net(cond), self.eps)
        return (x + shift) * scale, sum_except_batch(torch.log(scale))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        shift, scale = _shift_scale(self.net(cond), self.eps)
        return y / scale - shift

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"injector": LayerExample(lambda: cls(4, 3, hidden=8), (2, 4, 4, 4), (2, 3, 4, 4)),
                "injector_odd": LayerExample(lambda: cls(3, 2, hidden=8), (2, 3, 4, 4), (2, 2, 4, 4))}


class CondAffineCoupling(_Coupling):
    r"""SRFlow's conditional affine coupling: ``x1`` (the first ``⌊C/2⌋`` channels) and the features
    parameterise an affine map of ``x2``.

    :math:`(t, h) = \mathrm{NN}([x_1, u])` (``x1`` first), :math:`s = \sigma(h+2) + \epsilon`;
    forward :math:`y_1 = x_1`, :math:`y_2 = (x_2 + t)\odot s`; inverse :math:`x_2 = y_2/s - t`;
    log-det :math:`\sum \log s` (block-triangular Jacobian with ``diag(s)`` on the ``x2`` block).
    With ``cond_channels = 0`` it is an unconditional coupling of the same form.

    References: Lugmayr et al., "SRFlow", ECCV 2020 (Eq. 7, conditional affine coupling); Dinh et al.,
    "Density estimation using Real NVP", ICLR 2017.
    """

    def __init__(self, channels: int, cond_channels: int = 0, hidden: int = 64, eps: float = 1e-4,
                 net: NetFactory | None = None) -> None:
        super().__init__(channels, cond_channels)
        self.eps = float(eps)
        self.net = (net or affine_net(hidden))(self.c1 + cond_channels, 2 * self.c2)

    def _shift_scale(self, x1: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        return _shift_scale(self.net(self._net_input(x1, cond)), self.eps)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        x1, x2 = x[:, : self.c1], x[:, self.c1:]
        shift, scale = self._shift_scale(x1, cond)
        return torch.cat([x1, (x2 + shift) * scale], dim=1), sum_except_batch(torch.log(scale))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        y1, y2 = y[:, : self.c1], y[:, self.c1:]
        shift, scale = self._shift_scale(y1, cond)
        return torch.cat([y1, y2 / scale - shift], dim=1)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"cond_coupling": LayerExample(lambda: cls(4, 3, hidden=8), (2, 4, 4, 4), (2, 3, 4, 4)),
                "cond_coupling_odd": LayerExample(lambda: cls(5, 2, hidden=8), (2, 5, 4, 4), (2, 2, 4, 4)),
                "coupling_uncond": LayerExample(lambda: cls(4, 0, hidden=8), (2, 4, 4, 4))}
