"""Coupling layers of the paper's Table 1: affine (Glow / SRFlow) and mixture-of-logistics (Flow++).

Both take a *network factory* (``net=``): a callable ``(in_channels, out_channels) -> nn.Module``
(see :mod:`attnflow_core.nn.coupling_nets`). The defaults build the multi-scale family's networks (Glow /
mARFlow / AttnFlow), with their state-dict keys.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import FlowError
from ..core.layer import FlowLayer, LayerExample
from ..core.ops import sum_except_batch
from ..nn.coupling_nets import NetFactory, affine_net
from ..nn.flowpp import MixLogisticNet

LOGIT_FLOOR = math.log(1e-4 / (1 - 1e-4))  # sigmoid(LOGIT_FLOOR) = 1e-4: AffineCoupling's smallest scale


class _Coupling(FlowLayer):
    """Shared split logic: ``x1 = x[:, :C//2]`` conditions, ``x2 = x[:, C//2:]`` is transformed."""

    def __init__(self, channels: int, cond_channels: int = 0) -> None:
        if channels < 2:
            raise FlowError(f"a coupling layer needs at least 2 channels, got {channels}")
        super().__init__(channels, cond_channels)
        self.c1 = channels // 2
        self.c2 = channels - self.c1

    def _net_input(self, x1: Tensor, cond: Tensor | None) -> Tensor:
        return x1 if self.cond_channels == 0 else torch.cat([x1, cond], dim=1)


class AffineCoupling(_Coupling):
    r"""Affine coupling (Table 1, Glow), optionally conditional (Table 1, SRFlow).

    :math:`(h_s, t) = \mathrm{NN}(x_1[, c])`, :math:`s = \sigma(h_s + 2)`;
    forward :math:`y_2 = s \odot x_2 + t`, :math:`y_1 = x_1`;
    inverse :math:`x_2 = (y_2 - t) / s`; log-det :math:`\sum \log s`.
    The scale logit is floored at :data:`LOGIT_FLOOR` (:math:`s \ge 10^{-4}`; forward, inverse and log-det
    alike, so the map stays a bijection with an exact log-det): below it the inverse would divide by an
    underflowing sigmoid (Inf/NaN); above it nothing changes, bit for bit.
    The network's last conv is zero-initialised, so the layer starts near identity.
    ``net`` maps ``c1 (+ cond_channels)`` channels to ``2·c2``: even channels are the shift,
    odd channels the scale logit (default: :class:`~attnflow_core.nn.AffineNet` of width ``hidden``).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018; Lugmayr et al., "SRFlow", ECCV 2020 (conditional).
    """

    def __init__(self, channels: int, hidden: int = 512, cond_channels: int = 0,
                 net: NetFactory | None = None) -> None:
        super().__init__(channels, cond_channels)
        self.net = (net or affine_net(hidden))(self.c1 + cond_channels, 2 * self.c2)

    def _params(self, x1: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.net(self._net_input(x1, cond))
        return h[:, 0::2], torch.clamp_min(h[:, 1::2] + 2.0, LOGIT_FLOOR)  # shift, scale logit

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        x1, x2 = x[:, : self.c1], x[:, self.c1:]
        shift, logit = self._params(x1, cond)
        y2 = x2 * torch.sigmoid(logit) + shift
        return torch.cat([x1, y2], dim=1), sum_except_batch(F.logsigmoid(logit))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        y1, y2 = y[:, : self.c1], y[:, self.c1:]
        shift, logit = self._params(y1, cond)
        return torch.cat([y1, (y2 - shift) / torch.sigmoid(logit)], dim=1)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"affine": LayerExample(lambda: cls(4, hidden=8), (2, 4, 4, 4)),
                "affine_odd": LayerExample(lambda: cls(5, hidden=8), (2, 5, 4, 4)),
                "affine_cond": LayerExample(lambda: cls(4, hidden=8, cond_channels=2), (2, 4, 4, 4), (2, 2, 4, 4))}


def _logsumexp(a: Tensor) -> Tensor:
    """``log Σ exp`` over dim 1 for finite ``a``: ``torch.logsumexp``'s formula (same values) without its
    infinity masking (about 10 % of a bisection step); gradient ``softmax(a)`` (the max is detached)."""
    m = a.amax(dim=1, keepdim=True).detach()
    return (a - m).exp().sum(dim=1).log() + m.squeeze(1)


def _log_mixture_sides(x: Tensor, log_pi: Tensor, mu: Tensor, inv_s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Per component :math:`\log\sigma(z)`, :math:`\log\pi + \log\sigma(z)` and :math:`\log\pi + \log\sigma(-z)`."""
    z = (x.unsqueeze(1) - mu) * inv_s
    ls_pos, ls_neg = F.logsigmoid(z), F.logsigmoid(-z)
    return ls_pos, log_pi + ls_pos, log_pi + ls_neg


def mixture_log_cdf_terms(x: Tensor, logit_pi: Tensor, mu: Tensor, log_s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""For :math:`F(x) = \sum_i \pi_i\,\sigma((x-\mu_i)e^{-\log s_i})`, return
    :math:`\log F`, :math:`\log(1-F)` and :math:`\log F'(x)` (all stable, in log space;
    :math:`F' = \sum_i \pi_i \sigma(z_i)\sigma(-z_i)/s_i`). Mixture components lie along dim 1."""
    log_pi = torch.log_softmax(logit_pi, dim=1)
    ls_pos, a, b = _log_mixture_sides(x, log_pi, mu, torch.exp(-log_s))
    return _logsumexp(a), _logsumexp(b), _logsumexp(b + ls_pos - log_s)


def bisection_steps(lo: Tensor, hi: Tensor, log_s: Tensor, cap: int) -> int:
    r"""Bisection steps that shrink every bracket ``[lo, hi]`` below its root's float spacing:
    :math:`n = \lceil \log_2 \max (hi - lo) / (\epsilon\, r) \rceil + 4` with ``ε`` the dtype's machine epsilon
    and the resolution scale :math:`r = \max(d, \min_i s_i)`, ``d`` the bracket's distance from 0. The final width is at most
    :math:`\epsilon r / 16`: below half the float spacing of the root (at least :math:`\epsilon |x| / 2`) wherever
    :math:`|x| \ge r/8` (:math:`|x| \ge d`), and within
    :math:`\epsilon \min_i s_i` of the root no mixture CDF changes by more than a relative ``ε``. At the float
    spacing the test sees the forward pass's own rounding, which then cancels in a round trip (on MNIST,
    fewer steps left 1.2× the round-trip error of 60 steps; these give it exactly). At most ``cap``; one host sync."""
    eps = torch.finfo(lo.dtype).eps
    lo, hi, log_s = lo.detach(), hi.detach(), log_s.detach()
    s_min = torch.exp(log_s.min(dim=1).values)
    outside = torch.where(lo * hi > 0, torch.minimum(lo.abs(), hi.abs()), torch.zeros_like(lo))  # 0 if 0 ∈ bracket
    res = torch.maximum(outside, s_min)
    ratio = float(((hi - lo) / (eps * res)).max()) if lo.numel() else 1.0
    return min(max(math.ceil(math.log2(max(ratio, 1.0))) + 4, 1), cap)


def mixture_inverse_cdf(u: Tensor, logit_pi: Tensor, mu: Tensor, log_s: Tensor) -> Tensor:
    r"""The ``x`` with :math:`\sigma^{-1}(F(x)) = u` for :math:`F(x) = \sum_i \pi_i\,\sigma((x-\mu_i)e^{-\log s_i})`
    (components along dim 1), by bisection.

    Bracket: every component CDF is monotone, so :math:`\min_i(\mu_i + s_i u) \le x \le \max_i(\mu_i + s_i u)`
    (at the right end every :math:`\sigma(z_i) \ge \sigma(u)`, at the left every one is :math:`\le`).
    Test: :math:`\log F(x) - \log(1 - F(x)) > u`, evaluated with exactly the operations of
    :func:`mixture_log_cdf_terms` (log-sum-exps of log-sigmoids, in log space in both tails), so that the
    forward pass's own rounding cancels in a round trip; only the terms the test needs are computed (no
    log-pdf), ``log π`` and ``1/s`` once, outside the loop.
    Steps: :func:`bisection_steps` of the brackets (about 34 in float32 for unit-sized mixtures; never more
    than the fixed 60 / 100 (float32 / float64) used before)."""
    log_pi = torch.log_softmax(logit_pi, dim=1)
    inv_s = torch.exp(-log_s)
    ends = mu + torch.exp(log_s) * u.unsqueeze(1)
    lo, hi = ends.min(dim=1).values, ends.max(dim=1).values
    for _ in range(bisection_steps(lo, hi, log_s, cap=100 if u.dtype == torch.float64 else 60)):
        mid = 0.5 * (lo + hi)
        _, a_, b_ = _log_mixture_sides(mid, log_pi, mu, inv_s)
        above = _logsumexp(a_) - _logsumexp(b_) > u
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    return 0.5 * (lo + hi)


MIXLOGISTIC_FORMS = ("marscf", "flowpp")


class MixLogisticCoupling(_Coupling):
    r"""Mixture-of-logistics affine coupling (Table 1, Flow++), in the mARFlow code's form by default.

    :math:`(a, t, \pi, \mu, \log\hat s) = \mathrm{NN}(x_1[, c])`,
    :math:`F(x) = \sum_i \pi_i\,\sigma((x - \mu_i)/\hat s_i)` and :math:`\ell = \sigma^{-1}(F(x_2))`;
    forward ``form="marscf"`` (default): :math:`y_2 = (\ell + t)\,e^{a}` (visinf/mar-scf,
    ``flow_modules/mixlogcdf_coupling.py``, the code the AttnFlow paper builds on);
    ``form="flowpp"``: :math:`y_2 = \ell\,e^{a} + t` (the Flow++ paper's equation).
    Log-det (both forms): :math:`\sum \big[\log F'(x_2) - \log F(x_2) - \log(1 - F(x_2)) + a\big]`,
    since :math:`d\ell/dx_2 = F'/(F(1-F))` and the affine map scales by :math:`e^a`.
    Inverse: :math:`u = y_2 e^{-a} - t` (``"marscf"``) or :math:`(y_2 - t)e^{-a}` (``"flowpp"``), then
    :math:`x_2 = F^{-1}(\sigma(u))` by :func:`mixture_inverse_cdf` (bisection inside a bracket that provably
    contains the root, :math:`\min_i(\mu_i + \hat s_i u) \le x_2 \le \max_i(\mu_i + \hat s_i u)`, for as many
    steps as the bracket and the dtype need).
    ``a = w·tanh(·)`` with a learned per-channel ``w`` (Flow++'s rescale).

    ``net(c1 (+ cond_channels), c2)`` must return ``(a, t, logit_pi, mu, log_s)`` as
    :class:`~attnflow_core.nn.MixLogisticNet` does (its default, with the sizes given here).

    References: Ho et al., "Flow++", ICML 2019 (Table 1 of the AttnFlow paper); Mahajan et al.,
    "Normalizing flows with multiscale autoregressive priors", CVPR 2020 (code: visinf/mar-scf).
    """

    def __init__(self, channels: int, hidden: int = 96, components: int = 32, blocks: int = 10,
                 dropout: float = 0.2, cond_channels: int = 0, attention: bool = True,
                 net: NetFactory | None = None, form: str = "marscf") -> None:
        super().__init__(channels, cond_channels)
        if form not in MIXLOGISTIC_FORMS:
            raise FlowError(f"unknown mixture-logistic coupling form {form!r}; choose one of {MIXLOGISTIC_FORMS}")
        self.form = form
        if net is None:
            def net(cin: int, cout: int) -> MixLogisticNet:
                return MixLogisticNet(cin, cout, hidden, components, blocks, dropout, attention)
        self.net = net(self.c1 + cond_channels, self.c2)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        x1, x2 = x[:, : self.c1], x[:, self.c1:]
        a, t, logit_pi, mu, log_s = self.net(self._net_input(x1, cond))
        log_f, log_1mf, log_pdf = mixture_log_cdf_terms(x2, logit_pi, mu, log_s)
        ell = log_f - log_1mf
        y2 = (ell + t) * torch.exp(a) if self.form == "marscf" else ell * torch.exp(a) + t
        logdet = sum_except_batch(log_pdf - log_f - log_1mf + a)
        return torch.cat([x1, y2], dim=1), logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        y1, y2 = y[:, : self.c1], y[:, self.c1:]
        a, t, logit_pi, mu, log_s = self.net(self._net_input(y1, cond))
        # target logit of F
        u = y2 * torch.exp(-a) - t if self.form == "marscf" else (y2 - t) * torch.exp(-a)
        return torch.cat([y1, mixture_inverse_cdf(u, logit_pi, mu, log_s)], dim=1)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        def small(cond_channels: int = 0, form: str = "marscf") -> "MixLogisticCoupling":
            return cls(4, hidden=8, components=3, blocks=1, dropout=0.0, cond_channels=cond_channels, form=form)

        return {"mixlogistic": LayerExample(small, (2, 4, 4, 4)),
                "mixlogistic_flowpp": LayerExample(lambda: small(form="flowpp"), (2, 4, 4, 4)),
                "mixlogistic_cond": LayerExample(lambda: small(2), (2, 4, 4, 4), (2, 2, 4, 4))}
