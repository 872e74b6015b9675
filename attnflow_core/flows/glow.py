"""Glow's non-coupling layers: ActNorm, LU-decomposed invertible 1×1 convolution, squeeze."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError
from ..core.layer import FlowLayer, LayerExample
from ..nn.norm import DataInitMixin


class ActNorm(DataInitMixin, FlowLayer):
    r"""Per-channel affine normalisation with data-dependent initialisation.

    Forward:  :math:`y_{c,h,w} = x_{c,h,w}\, e^{\ell_c} + b_c`;
    inverse:  :math:`x = (y - b)\, e^{-\ell}`;
    log-det:  :math:`H W \sum_c \ell_c`.

    On the first forward pass in training mode, ``b`` and ``ℓ`` are set so that the
    output has zero mean and unit variance per channel. The ``initialized`` flag is a
    buffer, so it is saved and restored with ``state_dict``.

    References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__(channels)
        self.eps = eps
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self._register_init_flag()

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        if self.training and not self.is_initialized():
            self.initialize(x)
        y = x * torch.exp(self.log_scale) + self.bias
        logdet = (x.shape[2] * x.shape[3]) * self.log_scale.sum()
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        return (y - self.bias) * torch.exp(-self.log_scale)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"actnorm": LayerExample(lambda: cls(4), (2, 4, 4, 4))}


class LUMixin:
    r"""The LU parameterisation shared by Glow's 1×1 conv and Full-Glow's conditional one:
    :math:`W = P\,(L \odot M_< + I)\,(U \odot M_> + \mathrm{diag}(\sigma \odot e^{\mathbf{s}}))` with the fixed
    permutation ``P`` and signs ``σ`` of the LU factorisation of a random rotation (buffers ``perm``,
    ``sign_s``, ``lower_mask``, ``eye``), so :math:`\log|\det W| = \sum_c s_c`."""

    def _init_lu(self, channels: int) -> tuple[Tensor, Tensor, Tensor]:
        """Register the fixed buffers; return the free factors ``(L, U strict, s)`` of a random rotation."""
        q, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        dtype = torch.get_default_dtype()
        self.register_buffer("perm", p.to(dtype))  # type: ignore[attr-defined]
        self.register_buffer("sign_s", torch.sign(s).to(dtype))  # type: ignore[attr-defined]
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1).to(dtype))  # type: ignore[attr-defined]
        self.register_buffer("eye", torch.eye(channels, dtype=dtype))  # type: ignore[attr-defined]
        return lower.to(dtype), torch.triu(upper, 1).to(dtype), torch.log(torch.abs(s)).to(dtype)

    def _lu_weight(self, lower: Tensor, upper: Tensor, log_s: Tensor) -> Tensor:
        """``W`` from the free factors; batched over leading dims of ``lower``/``upper``/``log_s``."""
        lower = lower * self.lower_mask + self.eye
        upper = upper * self.lower_mask.T + torch.diag_embed(self.sign_s * torch.exp(log_s))
        return self.perm @ lower @ upper


class InvConv1x1(LUMixin, FlowLayer):
    r"""Invertible 1×1 convolution in LU form.

    :math:`W = P\,L\,(U + \mathrm{diag}(\sigma \odot e^{\mathbf{s}}))` with a fixed permutation
    ``P``, unit-lower-triangular ``L``, strictly upper ``U``, fixed signs ``σ`` and learned ``s``.
    Forward :math:`y_{:,h,w} = W x_{:,h,w}`; inverse :math:`x = W^{-1} y`;
    log-det :math:`H W \sum_c s_c`.

    ``L`` and ``U`` are stored as full ``C×C`` parameters and masked, as in the
    reference mARFlow code (so parameter counts match it).

    References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        lower, upper, log_s = self._init_lu(channels)
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(upper)
        self.log_s = nn.Parameter(log_s)

    def weight(self) -> Tensor:
        return self._lu_weight(self.lower, self.upper, self.log_s)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        w = self.weight()
        y = F.conv2d(x, w.view(self.channels, self.channels, 1, 1))
        logdet = (x.shape[2] * x.shape[3]) * self.log_s.sum()
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        w = self.weight()
        w_inv = torch.linalg.inv(w.double()).to(w.dtype)  # float64 inverse of the float32 forward matrix
        return F.conv2d(y, w_inv.view(self.channels, self.channels, 1, 1))

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"invconv": LayerExample(lambda: cls(4), (2, 4, 4, 4))}


class Squeeze(FlowLayer):
    r"""Space-to-depth by a factor 2: ``(C, H, W) -> (4C, H/2, W/2)``; volume-preserving (log-det 0).

    Channel order ``4c + 2·dy + dx``.

    References: Dinh et al., "Density estimation using Real NVP", ICLR 2017.
    """

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x)
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise FlowError(f"Squeeze needs an even height and width, got {h}×{w} (input shape {tuple(x.shape)})")
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(b)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y)
        b, c, h, w = y.shape
        if c % 4:
            raise FlowError(f"unsqueeze needs a channel count divisible by 4, got {c}")
        return y.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"squeeze": LayerExample(cls, (2, 3, 4, 4))}
