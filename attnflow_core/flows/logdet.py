r"""Log-determinants of residual blocks ``y = x + g(x)`` with ``Lip(g) < 1``: exact, truncated power series
(i-ResNet) and the unbiased Russian-roulette estimator with the Neumann-series gradient (Residual Flows).

**Series.** :math:`\log\det(I + J) = \sum_{k\ge1} (-1)^{k+1}\,\mathrm{tr}(J^k)/k`, convergent since
:math:`\|J\|_2 \le \mathrm{Lip}(g) < 1`. Hutchinson: :math:`\mathrm{tr}(A) = E_v[v^\top A v]`, ``v``
Gaussian (or Rademacher), one probe shared by all powers, :math:`v^\top J^k v` built from ``k``
vector–Jacobian products ``w_k = J^\top w_{k-1}``, ``w_0 = v``.

* ``"series"`` (i-ResNet): the first ``n_terms`` terms, biased (the tail is dropped); the gradient
  back-propagates through the terms (or through the Neumann surrogate below, if ``neumann_grad``).
* ``"roulette"`` (Residual Flows): draw ``N ~ p`` (Poisson(λ) on {0,1,…} or geometric(p) on {1,2,…}),
  keep ``n₀`` terms always and weight term ``k > n₀`` by :math:`\frac1S\sum_s 1[N_s \ge k-n_0] / P(N \ge k-n_0)`
  over ``S`` draws; the series runs to ``n₀ + max_s N_s``. Since :math:`E\,1[N \ge m] = P(N \ge m)`, the
  estimate is unbiased for the full series. In evaluation mode ``n₀ = n_exact_eval`` (default 20, as in the
  reference; here the configured value is honoured, unlike its hard-coded 20).
* ``"exact"``: ``slogdet(I + J)`` of the full per-sample Jacobian (small inputs: tests, walkthroughs).

**Neumann gradient.** :math:`\partial_\theta \log\det(I+J) = \sum_{k\ge1} (-1)^{k+1}\,\mathrm{tr}(J^{k-1}\partial_\theta J)`.
With the same weights :math:`c_k` as the value, :math:`u = \sum_{k=1}^{n} (-1)^{k+1} c_k (J^\top)^{k-1} v` is
accumulated without a graph, and :math:`s = \langle J^\top u, v\rangle` is formed with a graph through one
VJP only; :math:`\partial s` is an unbiased estimate of the gradient (for ``θ`` and ``x``), with memory
independent of the number of terms. The block returns ``value + (s − s.detach())``: the *value* is the
unbiased estimate and the *gradient* Neumann's, so the logged training bits/dim is a real (noisy) bits/dim
(the reference logs the surrogate ``s``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.errors import FlowError

METHODS = ("roulette", "series", "exact")
DISTS = ("poisson", "geometric")
PROBES = ("gaussian", "rademacher")


@dataclass
class LogDetConfig:
    """How a residual block estimates its log-determinant (JSON-friendly; module docstring)."""

    method: str = "roulette"
    dist: str = "poisson"
    lam: float = 2.0  # Poisson rate
    p: float = 0.5  # geometric success probability
    n_exact: int = 2  # roulette: terms always kept in training
    n_exact_eval: int = 20  # roulette: terms always kept in evaluation mode
    n_samples: int = 1  # roulette: draws of N per estimate
    n_terms: int = 5  # series: truncation
    n_probes: int = 1
    probe: str = "gaussian"
    neumann_grad: bool = True

    def validate(self) -> None:
        if self.method not in METHODS or self.dist not in DISTS or self.probe not in PROBES:
            raise FlowError(f"log-det config: method in {METHODS}, dist in {DISTS}, probe in {PROBES}; got {self}")
        if not (self.lam > 0 and 0 < self.p < 1 and self.n_exact >= 0 and self.n_exact_eval >= 0
                and self.n_samples >= 1 and self.n_terms >= 1 and self.n_probes >= 1):
            raise FlowError(f"log-det config needs lam > 0, 0 < p < 1, n_exact(_eval) >= 0, n_samples, n_terms, "
                            f"n_probes >= 1; got {self}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | "LogDetConfig" | None) -> "LogDetConfig":
        if isinstance(d, LogDetConfig):
            return d
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d or {}) - names
        if unknown:
            raise FlowError(f"unknown log-det config key(s) {sorted(unknown)}; known: {sorted(names)}")
        cfg = cls(**dict(d or {}))
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tail_prob(cfg: LogDetConfig, m: int) -> float:
    """``P(N ≥ m)`` of the roulette distribution."""
    if cfg.dist == "geometric":  # support {1, 2, ...}
        return 1.0 if m <= 1 else (1.0 - cfg.p) ** (m - 1)
    if m <= 0:
        return 1.0
    return max(0.0, 1.0 - math.exp(-cfg.lam) * sum(cfg.lam ** i / math.factorial(i) for i in range(m)))


def draw_n(cfg: LogDetConfig) -> list[int]:
    """``n_samples`` draws of ``N`` from the global (CPU) torch RNG: seeded runs repeat, no device sync."""
    if cfg.dist == "poisson":
        return [int(v) for v in torch.poisson(torch.full((cfg.n_samples,), float(cfg.lam), dtype=torch.float64))]
    return [int(v) for v in torch.empty(cfg.n_samples, dtype=torch.float64).geometric_(cfg.p)]


def series_weights(cfg: LogDetConfig, training: bool) -> list[float]:
    """``[c_1, …, c_n]``: the weight of term ``k`` (1 for kept terms, the roulette reweighting beyond)."""
    if cfg.method == "series":
        return [1.0] * cfg.n_terms
    n0 = cfg.n_exact if training else cfg.n_exact_eval
    draws = draw_n(cfg)
    n = n0 + max(draws)
    return [1.0 if k <= n0 else sum(d >= k - n0 for d in draws) / len(draws) / tail_prob(cfg, k - n0)
            for k in range(1, n + 1)]


def _probe(x: Tensor, kind: str) -> Tensor:
    if kind == "gaussian":
        return torch.randn_like(x)
    return torch.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2 - 1


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def exact_logdet(g: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """``(g(x), log|det(I + J_g(x))|)`` per sample from the full Jacobian (``D`` backward passes)."""
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        gx = g(xg)
        flat = gx.flatten(1)
        rows = [torch.autograd.grad(flat[:, d].sum(), xg, retain_graph=True, create_graph=create_graph)[0].flatten(1)
                for d in range(flat.shape[1])]
        jac = torch.stack(rows, 1)  # (B, D, D), jac[b, d] = ∂g_d/∂x
        eye = torch.eye(jac.shape[1], dtype=jac.dtype, device=jac.device)
        logdet = torch.linalg.slogdet(eye + jac).logabsdet
    return gx, logdet


def estimate_logdet(g: Callable[[Tensor], Tensor], x: Tensor, cfg: LogDetConfig, training: bool,
                    params_need_grad: bool = True) -> tuple[Tensor, Tensor]:
    """``(g(x), estimate of log det(I + J_g(x)))`` per sample (module docstring). A graph is built only if
    autograd is on and ``x`` or the parameters need gradients."""
    need_graph = torch.is_grad_enabled() and (x.requires_grad or params_need_grad)
    if cfg.method == "exact":
        gx, ld = exact_logdet(g, x, create_graph=need_graph)
        return (gx, ld) if need_graph else (gx.detach(), ld.detach())
    coefs = series_weights(cfg, training)
    n = len(coefs)
    if n == 0:  # a roulette draw of zero terms with n_exact = 0: the estimate is 0
        gx = g(x)
        return gx, x.new_zeros(x.shape[0])
    neumann = need_graph and cfg.neumann_grad
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        gx = g(xg)
        total = x.new_zeros(x.shape[0])
        for _ in range(cfg.n_probes):
            v = _probe(x, cfg.probe)
            w, value = v, x.new_zeros(x.shape[0])
            if neumann:
                u = coefs[0] * v
                for k in range(1, n + 1):
                    w = torch.autograd.grad(gx, xg, w, retain_graph=True)[0]
                    value = value + (-1) ** (k + 1) / k * coefs[k - 1] * _dot(w, v)
                    if k < n:
                        u = u + (-1) ** k * coefs[k] * w
                s = _dot(torch.autograd.grad(gx, xg, u.detach(), retain_graph=True, create_graph=True)[0], v)
                total = total + value.detach() + (s - s.detach())
            else:
                for k in range(1, n + 1):
                    w = torch.autograd.grad(gx, xg, w, retain_graph=True, create_graph=need_graph)[0]
                    value = value + (-1) ** (k + 1) / k * coefs[k - 1] * _dot(w, v)
                total = total + value
    logdet = total / cfg.n_probes
    if not need_graph:
        return gx.detach(), logdet.detach()
    return gx, logdet


def truncation_bound(lip: float, dims: int, n_terms: int) -> float:
    """Bound on the bias of the ``n_terms`` series with an exact trace: :math:`d \\sum_{k>n} L^k/k
    = -d(\\ln(1-L) + \\sum_{k\\le n} L^k/k)` (``|tr(J^k)| ≤ d‖J‖^k``)."""
    if not 0 <= lip < 1:
        return math.inf
    return -dims * (math.log1p(-lip) + sum(lip ** k / k for k in range(1, n_terms + 1)))
