"""The computations of the contractive-flow walkthrough notebook (each small enough for a laptop in seconds):
the log-det power series and its convergence, the roulette estimator against the exact ``slogdet``,
power-iteration ``σ̂`` against the certified bound and the exact norm, a fixed-point inverse step by step,
and measured ``Lip(g)`` of every attention variant, ours and published."""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from ..flows.logdet import LogDetConfig, estimate_logdet, exact_logdet, truncation_bound
from ..nn.acf import ACFPublishedDotAttention, L2SelfAttention, LipschitzDotAttention
from ..nn.lipschitz import SpectralConv2d
from ..nn.lipschitz_nets import LipschitzConvNet
from ..nn.spectral import conv_norm_upper_bound, conv_ops, power_iteration
from ..nn.zha import ZhaAttention
from .jacobian import dense_jacobian
from .lipschitz import conv_matrix, find_normaliser_root, jacobian_norm, lipschitz_probe


def series_convergence(g: nn.Module, x: Tensor, n_max: int = 20) -> dict[str, Any]:
    """Partial sums of ``Σ (−1)^{k+1} tr(J^k)/k`` with exact traces against ``slogdet(I + J)``, and the
    truncation bound ``d·Σ_{k>n} L^k/k`` with ``L`` the certified ``Lip(g)``."""
    jac = dense_jacobian(g, x)
    exact = float(torch.linalg.slogdet(torch.eye(jac.shape[0], dtype=jac.dtype) + jac).logabsdet)
    lip = float(g.lipschitz_bound())
    partial, power, total = [], torch.eye(jac.shape[0], dtype=jac.dtype), 0.0
    for k in range(1, n_max + 1):
        power = power @ jac
        total += (-1) ** (k + 1) * float(power.trace()) / k
        partial.append(total)
    return {"n": list(range(1, n_max + 1)), "partial": partial, "exact": exact,
            "error": [abs(p - exact) for p in partial], "lip": lip, "spectral_norm": float(torch.linalg.matrix_norm(jac, 2)),
            "bound": [truncation_bound(lip, jac.shape[0], n) for n in range(1, n_max + 1)]}


@torch.no_grad()
def roulette_draws(g: nn.Module, x: Tensor, cfg: LogDetConfig, draws: int = 2000, training: bool = True) -> dict[str, Any]:
    """``draws`` independent estimates (one per call, seeds 0…) against the exact float64 log-det."""
    exact = float(exact_logdet(g, x)[1][0])
    est = []
    for s in range(draws):
        torch.manual_seed(s)
        est.append(float(estimate_logdet(g, x, cfg, training)[1][0]))
    t = torch.tensor(est, dtype=torch.float64)
    return {"estimates": est, "exact": exact, "mean": float(t.mean()), "se": float(t.std() / math.sqrt(draws)),
            "std": float(t.std())}


def sigma_table(channels: tuple[int, int] = (3, 16), sizes: tuple[int, ...] = (2, 4, 8, 16), seed: int = 0,
                iterations: tuple[int, ...] = (1, 5, 50)) -> list[dict[str, Any]]:
    """For one random 3×3 kernel: ``σ̂`` after a few power iterations, the exact norm of the zero-padded conv
    (dense SVD where the matrix is small) and the certified circular bound, at several input sizes."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(channels[1], channels[0], 3, 3, generator=g, dtype=torch.float64)
    rows = []
    for n in sizes:
        row: dict[str, Any] = {"size": f"{n}×{n}"}
        apply, adjoint = conv_ops(w, (1, 1))
        for it in iterations:
            v0 = torch.randn(1, channels[0], n, n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
            u, v, _ = power_iteration(apply, adjoint, v0, v0 / v0.norm(), it, 0.0)
            row[f"sigma_hat_{it}"] = float((u * apply(v)).sum())
        row["exact"] = float(torch.linalg.matrix_norm(conv_matrix(w, (n, n), 1), 2)) if channels[0] * n * n <= 2048 else math.nan
        row["certified"] = conv_norm_upper_bound(w, (n, n), (1, 1))
        rows.append(row)
    return rows


@torch.no_grad()
def fixed_point_trace(block_g: nn.Module, y: Tensor, iters: int = 60) -> dict[str, Any]:
    """``max|x_{i+1} − x_i|`` and the error to a converged solution along the fixed-point iteration, with
    the contraction envelope ``L^i`` and where the reference's squared rule (``Δ² < 1e-5(1 + |y|)``) stops."""
    x = y - block_g(y)
    steps = []
    for _ in range(iters):
        nxt = y - block_g(x)
        steps.append(nxt)
        x = nxt
    xs = torch.stack(steps)
    final = xs[-1]
    delta = [float((xs[i] - (xs[i - 1] if i else y - block_g(y))).abs().max()) for i in range(len(xs))]
    err = [float((xs[i] - final).abs().max()) for i in range(len(xs))]
    tol = 1e-5 + 1e-5 * y.abs()
    ref_stop = next((i for i in range(1, len(xs)) if bool(((xs[i] - xs[i - 1]) ** 2 / tol < 1).all())), None)
    ours_stop = next((i for i, d in enumerate(delta) if d <= 1e-8), None)
    return {"delta": delta, "error": err, "lip": float(block_g.lipschitz_bound()), "reference_stop": ref_stop,
            "reference_error": err[ref_stop] if ref_stop is not None else math.nan, "our_stop": ours_stop,
            "our_error": err[ours_stop] if ours_stop is not None else math.nan}


def attention_lipschitz_table(seed: int = 0, adversarial_steps: int = 10, weight_scale: float = 10.0
                              ) -> list[dict[str, Any]]:
    """Measured ``Lip`` (max over Gaussian inputs at scales 1/10/100, a constant input and an adversarial
    search) against the certificate, with every weight matrix scaled by ``weight_scale`` (and attention gates
    fully open), for our branches with ACF L2 / dot attention and Zha's corrected iDP/iCon, and for the
    published forms (ACF's dot product with ``γ = 1``; Zha's iDP/iCon, also 1e-3 past a root of their
    normaliser, over random initialisations and lines). Zha's forms act on 12 channels (their scale-1 width)."""
    torch.manual_seed(seed)
    g_shape, z_shape = (2, 3, 4, 4), (2, 12, 4, 4)
    items = {
        "ours: Residual Flow g (no attention)": (LipschitzConvNet(3, 16, (4, 4)), g_shape),
        "ours: g + ACF L2 attention": (LipschitzConvNet(3, 16, (4, 4), attention=L2SelfAttention(16, heads=2)), g_shape),
        "ours: g + ACF dot attention (LipschitzNorm)": (LipschitzConvNet(3, 16, (4, 4), attention=LipschitzDotAttention(16)),
                                                        g_shape),
        "ours: Zha iDP corrected F": (ZhaAttention(12, "idp", "corrected"), z_shape),
        "ours: Zha iCon corrected F": (ZhaAttention(12, "icon", "corrected"), z_shape),
        "published: g + ACF dot attention (γ = 1)": (LipschitzConvNet(3, 16, (4, 4), attention=ACFPublishedDotAttention(16, 1.0)),
                                                     g_shape),
        "published: Zha iDP F (gen repo)": (ZhaAttention(12, "idp", "published"), z_shape),
        "published: Zha iCon F (gen repo)": (ZhaAttention(12, "icon", "published"), z_shape),
    }
    rows = []
    for name, (g, shape) in items.items():
        g = g.double()
        unscaled = copy.deepcopy(g)
        with torch.no_grad():
            for pname, p in g.named_parameters():
                if p.dim() > 1 and not pname.endswith("gamma"):
                    p.mul_(weight_scale)
                elif pname.endswith("gate"):
                    p.fill_(8.0)
        g(torch.zeros(shape, dtype=torch.float64))
        probe = lipschitz_probe(g, shape, scales=(1.0, 10.0, 100.0), adversarial_steps=adversarial_steps, iters=15)
        row = {"branch": name, "certificate": float(g.lipschitz_bound()), **{f"measured_{k}": v for k, v in probe.items()}}
        if isinstance(g, ZhaAttention) and g.variant == "published":
            row["near_normaliser_root"] = _near_root(unscaled, shape)  # at initial weights
        rows.append(row)
    return rows


def _near_root(att: ZhaAttention, shape: tuple[int, ...], tries: int = 20) -> float:
    """Largest local slope 1e-3 past a sign change of the published normaliser, over ``tries`` random
    initialisations of the same form, each searched along one random line."""
    best = math.nan
    for s in range(tries):
        torch.manual_seed(s)
        fresh = ZhaAttention(att.channels, att.kind, "published", att.normalise).double()
        gen = torch.Generator().manual_seed(s)
        x0 = torch.randn(shape[1:], generator=gen, dtype=torch.float64).unsqueeze(0)
        d = torch.randn(shape[1:], generator=gen, dtype=torch.float64).unsqueeze(0)
        t = find_normaliser_root(fresh, x0, d, t_max=15.0, grid=100)
        if t is not None:
            slope = float(jacobian_norm(fresh, x0 + (t + 1e-3) * d, iters=20)[0])
            best = slope if math.isnan(best) else max(best, slope)
    return best


def spectral_layer_demo(seed: int = 0) -> dict[str, float]:
    """One SpectralConv2d refreshed with a single power iteration: its ``σ̂``, the exact norm of the raw
    weight, and the exact norm of the weight it uses (≤ ``coeff`` thanks to the certified gap)."""
    torch.manual_seed(seed)
    conv = SpectralConv2d(3, 8, 3, (6, 6), coeff=0.9).double()
    conv.refresh(max_iter=1)
    exact = float(torch.linalg.matrix_norm(conv_matrix(conv.weight, (6, 6), 1), 2))
    used = float(torch.linalg.matrix_norm(conv_matrix(conv.normalized_weight().detach(), (6, 6), 1), 2))
    return {"sigma_hat_1_iteration": float(conv.sigma_hat), "exact": exact, "certified": conv.certified_norm(),
            "used_exact": used, "coeff": conv.coeff}
