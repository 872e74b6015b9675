r"""The invertible residual block ``y = x + g(x)`` with ``Lip(g) < 1`` (i-ResNet, Residual Flows).

**Invertibility.** For fixed ``y`` the map ``T(x) = y − g(x)`` is a contraction (``Lip(T) = Lip(g) =: L
< 1``), so by Banach's theorem it has exactly one fixed point ``x*`` with ``x* + g(x*) = y``: the block is a
bijection of :math:`\mathbb R^d`, and ``‖x_i − x*‖ ≤ L^i ‖x_0 − x*‖`` for the iteration ``x_{i+1} = T(x_i)``.

**Inverse** (fixed point, ``x_0 = y − g(y)``). The iteration stops when
``max|x_{i+1} − x_i| ≤ tol·(1 − r_i)`` with ``r_i`` the observed contraction ratio of successive steps
(clamped to ``[0, 0.999]``): the rule ``max|Δ| ≤ tol`` (``tol = 1e-8`` in float64; ``1e-5·max(1, max|y|)`` in
float32, whose rounding floor is ``≈ 1e-7·|y|``), tightened by the geometric tail ``r/(1 − r)·|Δ|`` of the
remaining error. The reference's rule compares a *squared* step with an unsquared tolerance and returns
silently after 1000 steps; here a non-finite or non-converged iteration raises
:class:`~attnflow_core.core.errors.ConvergenceError` naming the block.

**Log-determinant.** ``log|det(I + J_g)|`` by the estimators of :mod:`attnflow_core.flows.logdet` (the
layer therefore sets ``exact_logdet = False``; the contract checks it statistically).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..core.errors import ConvergenceError
from ..core.layer import FlowLayer, LayerExample
from ..nn.lipschitz_nets import LipschitzConvNet, LipschitzFCNet
from .logdet import LogDetConfig, estimate_logdet

INVERSE_ATOL = {torch.float64: 1e-8, torch.float32: 1e-5}


def _exact_example(cls: type["ResidualBlock"]) -> "ResidualBlock":
    block = cls(LipschitzConvNet(1, 4, (3, 3)), logdet=dict(method="exact"))
    block.contract_draws = 4  # deterministic: a few repeats suffice
    return block


class ResidualBlock(FlowLayer):
    r"""``y = x + g(x)``, ``g`` any module with ``Lip(g) < 1`` and a ``lipschitz_bound()`` (module docstring).

    Forward: ``y = x + g(x)``; inverse: fixed-point iteration; log-det: estimated
    (:class:`~attnflow_core.flows.logdet.LogDetConfig`). ``name`` appears in convergence errors.

    References: Behrmann et al., "Invertible Residual Networks", ICML 2019; Chen et al., "Residual Flows for
    Invertible Generative Modeling", NeurIPS 2019.
    """

    exact_logdet = False
    exact_inverse = False
    # estimates the shared contract averages (each costs a forward); tests/flows/test_logdet.py checks the
    # estimators themselves with 10^4 draws
    contract_draws = 120

    def __init__(self, g: nn.Module, channels: int | None = None, logdet: LogDetConfig | dict[str, Any] | None = None,
                 max_iter: int = 1000, atol: float | None = None, name: str = "") -> None:
        super().__init__(channels if channels is not None else getattr(g, "channels", None))
        self.g = g
        self.logdet_cfg = LogDetConfig.from_dict(logdet)
        self.max_iter = int(max_iter)
        self.atol = atol
        self.name = name or type(self).__name__
        self.last_inverse: dict[str, float] = {}

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        needs = any(p.requires_grad for p in self.g.parameters())
        gx, logdet = estimate_logdet(self.g, x, self.logdet_cfg, self.training, params_need_grad=needs)
        return x + gx, logdet

    # -- inverse -------------------------------------------------------------------------------
    def _tol(self, y: Tensor) -> float:
        if self.atol is not None:
            return float(self.atol)
        if y.dtype == torch.float64:
            return INVERSE_ATOL[torch.float64]
        return INVERSE_ATOL[torch.float32] * max(1.0, float(y.abs().max()))

    @property
    def inverse_tol(self) -> float:
        """The round-trip tolerance the block states (relative to ``max(1, max|x|)``), by parameter dtype."""
        p = next(self.parameters(), None)
        return INVERSE_ATOL[torch.float64 if p is not None and p.dtype == torch.float64 else torch.float32]

    @torch.no_grad()
    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        tol = self._tol(y)
        x = y - self.g(y)
        prev, delta = math.inf, math.inf
        for it in range(1, self.max_iter + 1):
            x_new = y - self.g(x)
            delta = float((x_new - x).abs().max())
            x = x_new
            if not math.isfinite(delta):
                raise ConvergenceError(f"{self.name}: the fixed-point inverse diverged (non-finite step at iteration "
                                       f"{it}); Lip(g) < 1 does not hold for this block ({self._lip_note()})")
            rate = min(delta / prev, 0.999) if prev > 0 and math.isfinite(prev) else 0.0
            if delta <= tol * (1.0 - rate):
                self.last_inverse = {"iterations": it, "max_delta": delta, "tol": tol}
                return x
            prev = delta
        raise ConvergenceError(f"{self.name}: the fixed-point inverse did not converge in {self.max_iter} iterations "
                               f"(last max|Δ| = {delta:.3g} > tol {tol:.3g}); {self._lip_note()}")

    def _lip_note(self) -> str:
        try:
            return f"certified Lip(g) <= {self.lipschitz_bound():.4g}"
        except Exception:  # a g without a certificate (e.g. a published, non-contractive attention)
            return "g has no Lipschitz certificate"

    def lipschitz_bound(self) -> float:
        """Certified upper bound of ``Lip(g)`` from the current weights (``inf`` if ``g`` states none)."""
        fn = getattr(self.g, "lipschitz_bound", None)
        return float(fn()) if fn is not None else math.inf

    def extra_repr(self) -> str:
        c = self.logdet_cfg
        return f"name={self.name!r}, logdet={c.method}" + (f"/{c.dist}" if c.method == "roulette" else "")

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        fast = dict(n_exact_eval=2)  # the contract averages 2000 estimates: keep each one cheap
        return {
            "conv_poisson": LayerExample(lambda: cls(LipschitzConvNet(2, 8, (4, 4)), logdet=fast), (2, 2, 4, 4)),
            "conv_elu_first_block_geometric": LayerExample(
                lambda: cls(LipschitzConvNet(2, 8, (4, 4), kernels="3-1-1", coeff=0.9, activation="elu", preact=False),
                            logdet=dict(dist="geometric", n_samples=3, n_exact_eval=1)), (2, 2, 4, 4)),
            "fc_rademacher": LayerExample(lambda: cls(LipschitzFCNet((2, 2, 2), 16),
                                                      logdet=dict(probe="rademacher", n_exact_eval=3)), (2, 2, 2, 2)),
            "conv_exact": LayerExample(lambda: _exact_example(cls), (2, 1, 3, 3)),
        }
