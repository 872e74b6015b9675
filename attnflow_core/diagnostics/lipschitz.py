r"""Measuring Lipschitz constants of residual branches (for tests, the walkthrough and the report).

* :func:`jacobian_norm` -- ``‖J_f(x)‖₂`` per sample by power iteration on ``JᵀJ`` (autograd JVP/VJP); a
  *lower* bound of ``Lip(f)`` (the local slope at ``x``).
* :func:`adversarial_lipschitz` -- gradient ascent on ``‖J_f(x) v‖`` over the input ``x`` (``v`` kept at the
  top singular vector), the attack every certified bound must survive.
* :func:`lipschitz_probe` -- the maximum over random inputs at several scales, constant inputs and the
  adversarial search.
* :func:`conv_matrix` -- the dense matrix of a zero-padded convolution (exact norms for small inputs).
* :func:`find_normaliser_root` -- a point on a line where Zha et al.'s published attention normaliser
  changes sign (where their block is not contractive).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn.zha import ZhaAttention


def _per_sample_unit(v: Tensor) -> Tensor:
    return v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (v.dim() - 1)))


def jvp_vjp(fn: Callable[[Tensor], Tensor], x: Tensor, v: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """``(J v, Jᵀ J v)`` at ``x`` (double-backward JVP)."""
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        y = fn(xg)
        u = torch.zeros_like(y, requires_grad=True)
        jt_u = torch.autograd.grad(y, xg, u, create_graph=True)[0]
        jv = torch.autograd.grad(jt_u, u, v, create_graph=create_graph)[0]
        jtjv = torch.autograd.grad(y, xg, jv, retain_graph=create_graph, create_graph=create_graph)[0]
    return jv, jtjv


def jacobian_norm(fn: Callable[[Tensor], Tensor], x: Tensor, iters: int = 50, v: Tensor | None = None) -> Tensor:
    """Per-sample ``‖J_fn(x)‖₂`` by ``iters`` rounds of power iteration (``fn`` must act per sample)."""
    v = _per_sample_unit(torch.randn_like(x) if v is None else v)
    for _ in range(iters):
        _, jtjv = jvp_vjp(fn, x, v)
        v = _per_sample_unit(jtjv.detach())
    jv, _ = jvp_vjp(fn, x, v)
    return jv.detach().flatten(1).norm(dim=1)


def adversarial_lipschitz(fn: Callable[[Tensor], Tensor], x0: Tensor, steps: int = 20, lr: float = 0.1,
                          power_iters: int = 2) -> tuple[float, Tensor]:
    """Largest ``‖J_fn(x)‖₂`` found by normalised gradient ascent on ``x`` from ``x0`` (per-sample steps of
    ``lr·‖x0‖``, ``v`` refined by power iteration between steps); returns it and the final ``x``."""
    x = x0.detach().clone()
    step = lr * x0.flatten(1).norm(dim=1).clamp_min(1e-3).view(-1, *([1] * (x0.dim() - 1)))
    v = _per_sample_unit(torch.randn_like(x0))
    best = 0.0
    for _ in range(steps):
        for _ in range(power_iters):
            v = _per_sample_unit(jvp_vjp(fn, x, v)[1].detach())
        xg = x.clone().requires_grad_(True)
        jv, _ = jvp_vjp(fn, xg, v, create_graph=True)
        slope = jv.flatten(1).norm(dim=1)
        best = max(best, float(slope.detach().max()))
        grad = torch.autograd.grad(slope.sum(), xg)[0]
        x = x + step * _per_sample_unit(grad)
    final = jacobian_norm(fn, x, iters=15, v=v)
    return max(best, float(final.max())), x


def lipschitz_probe(fn: Callable[[Tensor], Tensor], shape: tuple[int, ...], scales: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0),
                    adversarial_steps: int = 15, dtype: torch.dtype = torch.float64, seed: int = 0,
                    iters: int = 30) -> dict[str, float]:
    """Max local slope of ``fn`` over Gaussian inputs at ``scales``, constant inputs and an adversarial search
    started from the worst of those: ``{"random": …, "constant": …, "adversarial": …, "max": …}``."""
    g = torch.Generator().manual_seed(seed)
    rand, worst_x, worst = 0.0, None, -1.0
    for s in scales:
        x = s * torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        val = jacobian_norm(fn, x, iters=iters)
        if float(val.max()) > worst:
            worst, worst_x = float(val.max()), x
        rand = max(rand, float(val.max()))
    const = float(jacobian_norm(fn, torch.ones(shape, dtype=dtype) * scales[-1], iters=iters).max())
    adv, _ = adversarial_lipschitz(fn, worst_x, steps=adversarial_steps) if adversarial_steps else (0.0, None)
    return {"random": rand, "constant": const, "adversarial": adv, "max": max(rand, const, adv)}


def conv_matrix(weight: Tensor, input_size: tuple[int, int], padding: int | tuple[int, int]) -> Tensor:
    """Dense float64 matrix of the zero-padded stride-1 convolution on ``input_size`` inputs."""
    c_in = weight.shape[1]
    n = c_in * input_size[0] * input_size[1]
    eye = torch.eye(n, dtype=torch.float64).view(n, c_in, *input_size)
    return F.conv2d(eye, weight.detach().double(), padding=padding).view(n, -1).T


@torch.no_grad()
def find_normaliser_root(attn: ZhaAttention, x0: Tensor, direction: Tensor, t_max: float = 20.0, grid: int = 400,
                         bisections: int = 60) -> float | None:
    """A ``t`` in ``[0, t_max]`` where the published normaliser (``Σ e`` over all entries, or the smallest
    per-column sum) of ``attn`` at ``x0 + t·direction`` changes sign; ``None`` if the grid sees none."""
    def norm(t: float) -> float:
        return float(attn.published_normaliser(x0 + t * direction).flatten()[0])

    ts = torch.linspace(0.0, t_max, grid, dtype=torch.float64).tolist()
    vals = [norm(t) for t in ts]
    for (t0, f0), (t1, f1) in zip(zip(ts, vals), zip(ts[1:], vals[1:])):
        if f0 == 0:
            return t0
        if f0 * f1 < 0:
            for _ in range(bisections):
                tm = 0.5 * (t0 + t1)
                fm = norm(tm)
                if f0 * fm <= 0:
                    t1 = tm
                else:
                    t0, f0 = tm, fm
            return 0.5 * (t0 + t1)
    return None
