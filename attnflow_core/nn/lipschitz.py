r"""Lipschitz building blocks of contractive residual branches: spectrally normalised linear layers and
convolutions with a *certified* norm, and 1-Lipschitz activations.

**Soft spectral normalisation.** A layer uses :math:`\bar W = W / \max(1, \sigma_f / c)` with target
``c < 1`` (Residual Flows: 0.98, i-ResNet: 0.9). Residual Flows take :math:`\sigma_f = \hat\sigma = u^\top W v`
from power iteration, a lower estimate of :math:`\sigma(W)`, so :math:`\|\bar W\|` can exceed ``c``. Here

.. math:: \sigma_f = u^\top W v + \delta,\qquad \delta = \max\big(0,\ \sigma_{\rm cert}(W_r) - u^\top W_r v\big)

where ``u, v`` and ``δ`` are refreshed (:meth:`SpectralNormed.refresh`) at weights ``W_r`` and
:math:`\sigma_{\rm cert}` is a certified upper bound (:mod:`attnflow_core.nn.spectral`: exact SVD for
matrices; for zero-padded convs the circular-convolution spectrum, or on small maps, where that is loose, a
Cholesky-certified bound from the exact Gram matrix, within 0.8 % of the true norm). At ``W = W_r``,
:math:`\sigma_f = \max(\hat\sigma, \sigma_{\rm cert}) \ge \sigma(W)`, hence

.. math:: \|\bar W\|_2 = \sigma(W)/\max(1, \sigma_f/c) \le \min(\sigma(W), c) \le c.

The gradient flows through :math:`u^\top W v` (as in Residual Flows); ``δ`` is a constant. **Freshness**:
every forward compares each weight's in-place version counter with the one recorded at the last refresh and
refreshes first if they differ (an optimiser step, a manual in-place edit), so the bound holds at *every*
forward; ``load_state_dict`` keeps the loaded ``u, v, δ`` only if they still certify the loaded weights.
Edits through ``weight.data`` bypass the version counter: call :meth:`SpectralNormed.refresh` after them. The trainer hook :class:`SpectralRefresh` does the refresh right after
each optimiser step (Residual Flows' schedule), so training forwards find it already done.

**Activations.** LipSwish :math:`\phi(z) = z\,\mathrm{sigmoid}(\beta z)/1.1`, :math:`\beta = \mathrm{softplus}(\beta')`:
:math:`\phi'(z) = f(\beta z)/1.1` with :math:`f(t) = s(t)(1 + t(1 - s(t)))`, ``s`` the sigmoid, for *every*
``β > 0``. ``f' = s(1-s)(2 - t\tanh(t/2))`` vanishes only at :math:`t\tanh(t/2) = 2`, i.e. ``t ≈ ±2.3994``,
where ``f ≈ 1.09984`` and ``f ≈ -0.09984``; with ``f → 1`` (``t → ∞``) and ``f → 0`` (``t → −∞``),
:math:`|\phi'| \le 1.09984/1.1 < 1`. ELU has slope ``1`` (``z > 0``) and ``e^z ≤ 1``: Lipschitz 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError
from .spectral import conv_norm_upper_bound, conv_ops, matrix_norm_upper_bound, power_iteration


class LipSwish(nn.Module):
    """:math:`z\\,\\mathrm{sigmoid}(\\beta z)/1.1` with a learnable ``β = softplus(β′)``, ``β′ = 0.5`` at init;
    Lipschitz ≤ 1 for every ``β`` (module docstring).

    References: Chen et al., "Residual Flows for Invertible Generative Modeling", NeurIPS 2019.
    """

    lipschitz = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.beta_raw = nn.Parameter(torch.tensor([0.5]))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(F.softplus(self.beta_raw) * x) / 1.1


class ELU(nn.ELU):
    """ELU, Lipschitz 1 (i-ResNet's activation).

    References: Behrmann et al., "Invertible Residual Networks", ICML 2019.
    """

    lipschitz = 1.0


ACTIVATIONS = {"lipswish": LipSwish, "elu": ELU}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise FlowError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class SpectralNormed(nn.Module):
    """Base of the softly spectrally normalised layers (module docstring): ``weight``, ``bias``, buffers
    ``u``, ``v`` (power-iteration vectors), ``sigma_gap`` (``δ``) and ``sigma_hat`` (last ``uᵀWv``)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, coeff: float, u_shape: tuple[int, ...],
                 v_shape: tuple[int, ...], max_iter: int = 200, tol: float = 1e-4) -> None:
        super().__init__()
        if not 0 < coeff:
            raise FlowError(f"spectral-norm coefficient must be > 0, got {coeff}")
        self.coeff = float(coeff)
        self.max_iter, self.tol = int(max_iter), float(tol)
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        u, v = torch.randn(u_shape), torch.randn(v_shape)
        self.register_buffer("u", u / u.norm())
        self.register_buffer("v", v / v.norm())
        self.register_buffer("sigma_gap", torch.zeros(()))
        self.register_buffer("sigma_hat", torch.zeros(()))
        self._seen: int | None = None  # weight version at the last refresh (None: never refreshed)
        self._cache: tuple | None = None  # (key, normalised weight) for forwards without autograd

    # -- what subclasses define ---------------------------------------------------------------
    def _ops(self, weight: Tensor) -> tuple[callable, callable]:  # pragma: no cover
        raise NotImplementedError

    def certified_norm(self, weight: Tensor | None = None, estimate: float = 0.0,
                       enough: float = 0.0) -> float:  # pragma: no cover
        """A certified upper bound of the operator norm of the layer with ``weight`` (default: raw weight);
        ``estimate`` is a known lower bound of that norm (``σ̂``) and ``enough`` a value below which a looser
        bound will do, which let a conv skip work it does not need."""
        raise NotImplementedError

    # -- refresh ------------------------------------------------------------------------------------
    def is_stale(self) -> bool:
        return self._seen != self.weight._version

    @torch.no_grad()
    def refresh(self, max_iter: int | None = None, tol: float | None = None, certify: bool = True) -> None:
        """Power iteration from the stored ``u, v`` (warm start), then ``δ`` from the certified bound."""
        apply, adjoint = self._ops(self.weight)
        u, v, _ = power_iteration(apply, adjoint, self.u.clone(), self.v.clone(),
                                  self.max_iter if max_iter is None else max_iter, self.tol if tol is None else tol)
        self.u.copy_(u)
        self.v.copy_(v)
        sigma = float((u * apply(v)).sum())
        self.sigma_hat.fill_(sigma)
        if certify:
            # a bound below coeff leaves the layer unscaled however tight it is: no need to tighten it
            self.sigma_gap.fill_(max(0.0, self.certified_norm(estimate=sigma, enough=self.coeff) - sigma))
        self._seen = self.weight._version
        self._cache = None

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(*args, **kwargs)
        self._cache = None
        # the loaded u, v, δ certify the loaded weights only if they were refreshed at them: a state saved
        # between an optimiser step and its refresh, or edited by hand, is not. Keep them (bit-exact resume)
        # only if σ_f = uᵀWv + δ still covers the certified bound of the loaded W; else refresh at next use.
        self._seen = self.weight._version if self._state_certifies_weight() else None

    @torch.no_grad()
    def _state_certifies_weight(self) -> bool:
        apply, _ = self._ops(self.weight)
        sigma = float((self.u * apply(self.v)).sum())
        # slack 1e-6: σ_f is summed in the weight's precision, the certificate in float64
        return sigma + float(self.sigma_gap) >= self.certified_norm(estimate=sigma, enough=self.coeff) * (1.0 - 1e-6)

    # -- the weight actually used ----------------------------------------------------------------
    def scale(self) -> Tensor:
        """``max(1, σ_f / c)`` with the gradient through ``uᵀWv``."""
        apply, _ = self._ops(self.weight)
        sigma_f = (self.u.clone() * apply(self.v.clone())).sum() + self.sigma_gap
        return torch.clamp(sigma_f / self.coeff, min=1.0)

    def normalized_weight(self) -> Tensor:
        if self.is_stale():
            self.refresh()
        if torch.is_grad_enabled():
            return self.weight / self.scale()
        # without autograd (evaluation, fixed-point inverses) the normalised weight is reused until it changes
        key = (self.weight._version, self.weight.dtype, self.weight.device, self.weight.data_ptr())
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.weight / self.scale())
        return self._cache[1]

    @torch.no_grad()
    def lipschitz_bound(self) -> float:
        """Certified bound of the layer's Lipschitz constant as used now (≤ ``coeff`` by construction)."""
        w = self.normalized_weight()
        # σ̂ of W̄ = W / scale is σ̂ / scale: a lower bound that spares small convs a dense factorisation
        return self.certified_norm(w, estimate=float(self.sigma_hat) * float(w.norm() / self.weight.norm().clamp_min(1e-30)))


class SpectralLinear(SpectralNormed):
    """Linear layer ``x ↦ W̄x + b`` on ``(B, in)`` with ``‖W̄‖₂ ≤ coeff`` (module docstring).

    References: Behrmann et al., "Invertible Residual Networks", ICML 2019; Chen et al., "Residual Flows
    for Invertible Generative Modeling", NeurIPS 2019.
    """

    def __init__(self, in_features: int, out_features: int, coeff: float = 0.98, bias: bool = True, **kw) -> None:
        ref = nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default initialisation
        super().__init__(ref.weight.data.clone(), None if ref.bias is None else ref.bias.data.clone(), coeff,
                         (out_features,), (in_features,), **kw)

    def _ops(self, weight: Tensor) -> tuple[callable, callable]:
        return (lambda v: weight @ v), (lambda u: weight.t() @ u)

    def certified_norm(self, weight: Tensor | None = None, estimate: float = 0.0, enough: float = 0.0) -> float:
        return matrix_norm_upper_bound(self.weight if weight is None else weight)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SpectralConv2d(SpectralNormed):
    """Stride-1 conv with ``padding = k // 2`` and ``‖conv(W̄)‖₂ ≤ coeff`` as an operator on inputs of up to
    ``input_size`` (module docstrings of this module and :mod:`~attnflow_core.nn.spectral`). A 1×1 conv is a
    per-pixel matrix: its operator norm is the matrix norm at every input size.

    References: Behrmann et al., "Invertible Residual Networks", ICML 2019; Chen et al., "Residual Flows
    for Invertible Generative Modeling", NeurIPS 2019; Sedghi et al., "The Singular Values of Convolutional
    Layers", ICLR 2019 (the certified bound).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, input_size: tuple[int, int] | None = None,
                 coeff: float = 0.98, bias: bool = True, **kw) -> None:
        if kernel_size % 2 == 0:
            raise FlowError(f"SpectralConv2d needs an odd kernel (same-size output), got {kernel_size}")
        if kernel_size > 1 and input_size is None:
            raise FlowError(f"a {kernel_size}×{kernel_size} SpectralConv2d needs input_size=(H, W): its operator "
                            f"norm depends on the input size")
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.kernel_size, self.padding = kernel_size, (kernel_size // 2, kernel_size // 2)
        self.input_size = None if kernel_size == 1 else (int(input_size[0]), int(input_size[1]))
        if kernel_size == 1:
            u_shape, v_shape = (out_channels,), (in_channels,)
        else:
            u_shape, v_shape = (1, out_channels, *self.input_size), (1, in_channels, *self.input_size)
        super().__init__(ref.weight.data.clone(), None if ref.bias is None else ref.bias.data.clone(), coeff,
                         u_shape, v_shape, **kw)

    def _ops(self, weight: Tensor) -> tuple[callable, callable]:
        if self.kernel_size == 1:
            w = weight.reshape(weight.shape[0], -1)
            return (lambda v: w @ v), (lambda u: w.t() @ u)
        return conv_ops(weight, self.padding)

    def certified_norm(self, weight: Tensor | None = None, estimate: float = 0.0, enough: float = 0.0) -> float:
        w = self.weight if weight is None else weight
        if self.kernel_size == 1:
            return matrix_norm_upper_bound(w)
        vectors = (self.u, self.v) if estimate > 0 else None  # σ̂'s vectors: a warm start for the dense path
        return conv_norm_upper_bound(w, self.input_size, self.padding, estimate=estimate, vectors=vectors,
                                     enough=enough)

    def forward(self, x: Tensor) -> Tensor:
        if self.input_size is not None and (x.shape[-2] > self.input_size[0] or x.shape[-1] > self.input_size[1]):
            raise FlowError(f"SpectralConv2d was normalised for inputs of up to {self.input_size[0]}×{self.input_size[1]}, "
                            f"got {x.shape[-2]}×{x.shape[-1]} (input shape {tuple(x.shape)}): its norm bound would not hold")
        return F.conv2d(x, self.normalized_weight(), self.bias, padding=self.padding)


def spectral_layers(module: nn.Module) -> list[SpectralNormed]:
    return [m for m in module.modules() if isinstance(m, SpectralNormed)]


@torch.no_grad()
def refresh_spectral_norms(module: nn.Module, max_iter: int | None = None, tol: float | None = None,
                           certify: bool = True) -> int:
    """Refresh every spectrally normalised layer of ``module``; returns how many were refreshed."""
    layers = spectral_layers(module)
    for m in layers:
        m.refresh(max_iter, tol, certify)
    return len(layers)


class SpectralRefresh:
    """Trainer hook ``hook(step, model, optimizer)``: refresh every spectral norm after each optimiser step
    (warm-started power iteration until ``σ̂`` moves by less than ``tol·σ̂`` or ``max_iter`` rounds, then the
    certified gap), as Residual Flows' training loop does (its rule: the vectors move by < 1e-3); ``every`` > 1
    refreshes less often (forwards still refresh stale layers, so the bound holds either way)."""

    def __init__(self, max_iter: int = 5, tol: float = 1e-3, every: int = 1, certify: bool = True) -> None:
        # certify=False skips the certified gap (for timing its cost only: the bound then no longer holds)
        self.max_iter, self.tol, self.every, self.certify = int(max_iter), float(tol), max(1, int(every)), bool(certify)

    def __call__(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        if step % self.every == 0:
            refresh_spectral_norms(model, self.max_iter, self.tol, self.certify)


def lipswish_max_slope(grid: int = 200_001, span: float = 40.0) -> float:
    """``max |d/dt [t·sigmoid(t)]| / 1.1`` on a dense grid (the LipSwish constant for every β > 0)."""
    t = torch.linspace(-span, span, grid, dtype=torch.float64)
    s = torch.sigmoid(t)
    return float((s * (1 + t * (1 - s))).abs().max()) / 1.1

