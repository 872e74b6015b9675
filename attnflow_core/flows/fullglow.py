r"""Full-Glow's layers: the conditional ActNorm and LU 1×1 conv, and its affine coupling.

In Full-Glow the right Glow (over the photo) reads, at every step, the activation of the matching step of
the left Glow (over the label map): its ActNorm output drives the right ActNorm, its 1×1-conv output the
right 1×1 conv, its step output the right coupling. Each layer here takes that activation as ``cond``.

**Per-sample log-determinants.** The reference code averages the conditional ActNorm's
:math:`\log|s|` and the non-LU 1×1 conv's slogdet over the batch, and its conditional LU path is
correct only at batch 1 (MoeinSorkhei/glow2). Here every layer computes its own parameters per
sample and returns one log-det per sample; the tests compare them with the autograd Jacobian at batch 2.

**Data-dependent start.** Both ActNorms start from the reference's statistics: per-channel mean and the
*unbiased* standard deviation (``torch.std``'s default) plus :math:`10^{-6}`, where Glow's
:class:`~attnflow_core.flows.ActNorm` uses the biased one (:func:`fullglow_init_stats`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.layer import FlowLayer, LayerExample
from ..core.ops import sum_except_batch
from ..nn.fullglow import CouplingCondNet, FullGlowCouplingNet, GlobalCondNet
from ..nn.norm import InitFlagMixin
from .coupling import LOGIT_FLOOR, _Coupling
from .glow import ActNorm, LUMixin


def fullglow_init_stats(x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    r"""Full-Glow's ActNorm start ``(s, t)`` per channel, shaped ``(C,)``: :math:`s = 1/(\hat\sigma + \epsilon)`,
    :math:`t = -\mu`, with :math:`\hat\sigma` the **unbiased** standard deviation over batch and space
    (so that :math:`s\,(x + t)` starts at zero mean and unit unbiased variance, as in the reference)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    return 1.0 / (flat.std(dim=1) + eps), -flat.mean(dim=1)


class FullGlowActNorm(ActNorm):
    r""":class:`~attnflow_core.flows.ActNorm` (forward :math:`y = x e^{\ell} + b`, log-det :math:`HW\sum_c \ell_c`)
    started as Full-Glow starts its left Glow's ActNorm, :math:`y = s\,(x + t)` with
    :func:`fullglow_init_stats`: :math:`\ell = \log s`, :math:`b = s\,t`.

    References: Sorkhei et al., "Full-Glow", GCPR 2021; Kingma & Dhariwal, "Glow", NeurIPS 2018 (ActNorm).
    """

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        s, t = fullglow_init_stats(x, self.eps)
        self.log_scale.copy_(torch.log(s).view_as(self.log_scale))
        self.bias.copy_((s * t).view_as(self.bias))
        self._mark_initialized()


class CondActNorm(InitFlagMixin, FlowLayer):
    r"""Conditional ActNorm: per-sample, per-channel scale and shift predicted from ``cond``.

    :math:`(s, t) = \mathrm{NN}(c)` with ``s, t ∈ R^C`` per sample (:class:`~attnflow_core.nn.fullglow.GlobalCondNet`);
    forward :math:`y = s \odot (x + t)`; inverse :math:`x = y / s - t`;
    log-det :math:`H W \sum_c \log|s_c|` **per sample** (the reference averages it over the batch).

    The net's last Linear starts with zero weights; on the first training batch its bias is set to
    :math:`s = 1/(\hat\sigma + 10^{-6})`, :math:`t = -\mu` (per-channel statistics of ``x``, unbiased
    :math:`\hat\sigma` as in the reference: :func:`fullglow_init_stats`), so the layer starts as a
    data-initialised ActNorm. Before that start the bias holds :math:`s = 1, t = 0` (the identity; the
    reference's zero bias would make a never-trained layer divide by zero in its inverse). As in the
    reference nothing keeps ``s`` away from zero: the
    layer is invertible wherever every :math:`s_c \ne 0`, and the likelihood's :math:`\log|s_c|` term
    pushes away from zero.

    References: Sorkhei et al., "Full-Glow: Fully conditional Glow for more realistic image generation",
    GCPR 2021 (conditional ActNorm).
    """

    def __init__(self, channels: int, cond_channels: int, height: int, width: int, eps: float = 1e-6) -> None:
        super().__init__(channels, cond_channels)
        self.eps = eps
        self.net = GlobalCondNet(cond_channels, height, width, 2 * channels)
        with torch.no_grad():  # s = 1 until the data-dependent start: an unstarted layer is the identity, not y/0
            self.net.last.bias[:channels] = 1.0
        self._register_init_flag()

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        self.net.last.bias.copy_(torch.cat(fullglow_init_stats(x, self.eps)))
        self._mark_initialized()

    def _scale_shift(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(cond)
        c = self.channels
        return out[:, :c, None, None], out[:, c:, None, None]

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        if self.training and not self.is_initialized():
            self.initialize(x)
        s, t = self._scale_shift(cond)
        logdet = (x.shape[2] * x.shape[3]) * torch.log(s.abs()).flatten(1).sum(1)
        return s * (x + t), logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        s, t = self._scale_shift(cond)
        return y / s - t

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"cond_actnorm": LayerExample(lambda: cls(4, 3, 6, 6), (2, 4, 6, 6), (2, 3, 6, 6))}


class CondInvConv1x1(LUMixin, FlowLayer):
    r"""Conditional invertible 1×1 conv in LU form: one weight matrix per sample, predicted from ``cond``.

    :math:`(L', U', \mathbf s) = \mathrm{NN}(c)` (``2C² + C`` outputs per sample) and
    :math:`W = P\,(L' \odot M_{<} + I)\,(U' \odot M_{>} + \mathrm{diag}(\sigma \odot e^{\mathbf s}))`
    with a fixed permutation ``P``, fixed signs ``σ`` and strict lower/upper masks.
    Forward :math:`y_{:,h,w} = W x_{:,h,w}`; inverse :math:`x = W^{-1} y` (float64 inverse);
    log-det :math:`H W \sum_c s_c` per sample, since ``L`` has a unit diagonal and
    :math:`|\det P| = 1`. ``W`` is invertible for every output of the net.

    The net's last Linear starts with zero weights and its bias holds the flattened LU factors of a
    random rotation, so every sample starts with the same orthogonal ``W``.

    References: Sorkhei et al., "Full-Glow", GCPR 2021 (conditional 1×1 conv, LU mode); Kingma &
    Dhariwal, "Glow", NeurIPS 2018 (LU parameterisation).
    """

    def __init__(self, channels: int, cond_channels: int, height: int, width: int) -> None:
        super().__init__(channels, cond_channels)
        lower, upper, log_s = self._init_lu(channels)
        self.net = GlobalCondNet(cond_channels, height, width, 2 * channels * channels + channels)
        with torch.no_grad():
            self.net.last.bias.copy_(torch.cat([lower.flatten(), upper.flatten(), log_s]))

    def weights(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample ``W`` (B, C, C) and log-diagonal ``s`` (B, C)."""
        c = self.channels
        out = self.net(cond)
        s = out[:, 2 * c * c:]
        return self._lu_weight(out[:, : c * c].view(-1, c, c), out[:, c * c: 2 * c * c].view(-1, c, c), s), s

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        w, s = self.weights(cond)
        return torch.einsum("bij,bjhw->bihw", w, x), (x.shape[2] * x.shape[3]) * s.sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        w, _ = self.weights(cond)
        w_inv = torch.linalg.inv(w.double()).to(w.dtype)  # float64 inverse of the float32 forward matrices
        return torch.einsum("bij,bjhw->bihw", w_inv, y)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"cond_invconv": LayerExample(lambda: cls(4, 3, 5, 7), (2, 4, 5, 7), (2, 3, 5, 7))}


class FullGlowCoupling(_Coupling):
    r"""Full-Glow's affine coupling, optionally conditioned on the left Glow's step output.

    With ``x_a = x[:, :C/2]`` and ``x_b = x[:, C/2:]`` (contiguous halves):
    :math:`(h_s, t) = \mathrm{NN}([x_a, \mathrm{CondNet}(c)])` (or :math:`\mathrm{NN}(x_a)` without ``cond``),
    split into contiguous halves, :math:`s = \sigma(\max(h_s + 2, \ell_0))` with the floor
    :math:`\ell_0` = :data:`~attnflow_core.flows.coupling.LOGIT_FLOOR` (:math:`s \ge 10^{-4}`; glow2 has no floor,
    which only matters where :math:`h_s + 2 < -9.21`);
    forward :math:`y_b = (x_b + t) \odot s`, :math:`y_a = x_a`; inverse :math:`x_b = y_b / s - t`;
    log-det :math:`\sum \log s` per sample. ``CondNet`` (:class:`~attnflow_core.nn.fullglow.CouplingCondNet`)
    maps the ``cond_channels`` of the left activation to ``C`` channels; ``NN`` is
    :class:`~attnflow_core.nn.fullglow.FullGlowCouplingNet` of width ``hidden`` and starts at zero, so
    the layer starts as :math:`y_b = \sigma(2)\,x_b`.

    References: Sorkhei et al., "Full-Glow", GCPR 2021 (reference ``AffineCoupling``); Kingma & Dhariwal,
    "Glow", NeurIPS 2018.
    """

    def __init__(self, channels: int, hidden: int = 512, cond_channels: int = 0, cond_hidden: int = 128) -> None:
        super().__init__(channels, cond_channels)
        self.cond_net = CouplingCondNet(cond_channels, channels, cond_hidden) if cond_channels else None
        self.net = FullGlowCouplingNet(self.c1 + (channels if cond_channels else 0), 2 * self.c2, hidden)

    def _params(self, xa: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        inp = xa if self.cond_net is None else torch.cat([xa, self.cond_net(cond)], dim=1)
        h = self.net(inp)
        # scale logit floored as AffineCoupling's (s >= 1e-4): the inverse never divides by an underflowed sigmoid
        return torch.clamp_min(h[:, : self.c2] + 2.0, LOGIT_FLOOR), h[:, self.c2:]  # scale logit, shift

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        xa, xb = x[:, : self.c1], x[:, self.c1:]
        logit, t = self._params(xa, cond)
        return torch.cat([xa, (xb + t) * torch.sigmoid(logit)], dim=1), sum_except_batch(F.logsigmoid(logit))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        ya, yb = y[:, : self.c1], y[:, self.c1:]
        logit, t = self._params(ya, cond)
        return torch.cat([ya, yb / torch.sigmoid(logit) - t], dim=1)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"fullglow_coupling": LayerExample(lambda: cls(4, hidden=8), (2, 4, 4, 4)),
                "fullglow_coupling_cond": LayerExample(lambda: cls(4, hidden=8, cond_channels=3, cond_hidden=6),
                                                       (2, 4, 4, 4), (2, 3, 4, 4))}
