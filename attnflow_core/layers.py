"""Glow's non-coupling layers: ActNorm, LU-decomposed invertible 1×1 convolution, squeeze."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FlowError, FlowLayer, check_image


class ActNorm(FlowLayer):
    r"""Per-channel affine normalisation with data-dependent initialisation (Glow).

    Forward:  :math:`y_{c,h,w} = x_{c,h,w}\, e^{\ell_c} + b_c`;
    inverse:  :math:`x = (y - b)\, e^{-\ell}`;
    log-det:  :math:`H W \sum_c \ell_c`.

    On the first forward pass in training mode, ``b`` and ``ℓ`` are set so that the
    output has zero mean and unit variance per channel. The ``initialized`` flag is a
    buffer, so it is saved and restored with ``state_dict``.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        self._init_cache = False  # avoids a host-device sync on every training step

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[override]
        self._init_cache = False
        super()._load_from_state_dict(*args, **kwargs)

    def is_initialized(self) -> bool:
        if not self._init_cache:
            self._init_cache = bool(self.initialized)
        return self._init_cache

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.bias.copy_(-mean * torch.exp(self.log_scale))
        self.initialized.fill_(True)
        self._init_cache = True

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_image(x, self.channels, "ActNorm input")
        if self.training and not self.is_initialized():
            self.initialize(x)
        y = x * torch.exp(self.log_scale) + self.bias
        logdet = (x.shape[2] * x.shape[3]) * self.log_scale.sum()
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        check_image(y, self.channels, "ActNorm input")
        return (y - self.bias) * torch.exp(-self.log_scale)


class InvConv1x1(FlowLayer):
    r"""Invertible 1×1 convolution in LU form (Glow).

    :math:`W = P\,L\,(U + \mathrm{diag}(\sigma \odot e^{\mathbf{s}}))` with a fixed permutation
    ``P``, unit-lower-triangular ``L``, strictly upper ``U``, fixed signs ``σ`` and learned ``s``.
    Forward :math:`y_{:,h,w} = W x_{:,h,w}`; inverse :math:`x = W^{-1} y`;
    log-det :math:`H W \sum_c s_c`.

    ``L`` and ``U`` are stored as full ``C×C`` parameters and masked, as in the
    reference mARFlow code (so parameter counts match it).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        q, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        dtype = torch.get_default_dtype()
        self.register_buffer("perm", p.to(dtype))
        self.register_buffer("sign_s", torch.sign(s).to(dtype))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1).to(dtype))
        self.register_buffer("eye", torch.eye(channels, dtype=dtype))
        self.lower = nn.Parameter(lower.to(dtype))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).to(dtype))

    def weight(self) -> Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_image(x, self.channels, "InvConv1x1 input")
        w = self.weight()
        y = F.conv2d(x, w.view(self.channels, self.channels, 1, 1))
        logdet = (x.shape[2] * x.shape[3]) * self.log_s.sum()
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        check_image(y, self.channels, "InvConv1x1 input")
        w = self.weight()
        w_inv = torch.linalg.inv(w.double()).to(w.dtype)  # float64 inverse of the float32 forward matrix
        return F.conv2d(y, w_inv.view(self.channels, self.channels, 1, 1))


class Squeeze(FlowLayer):
    r"""Space-to-depth by a factor 2: ``(C, H, W) -> (4C, H/2, W/2)``; volume-preserving (log-det 0)."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_image(x, None, "Squeeze input")
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise FlowError(f"Squeeze needs an even height and width, got {h}×{w} (input shape {tuple(x.shape)})")
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(b)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        check_image(y, None, "Squeeze input")
        b, c, h, w = y.shape
        if c % 4:
            raise FlowError(f"unsqueeze needs a channel count divisible by 4, got {c}")
        return y.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)
