"""Evaluators of the contractive-flow table: bits/dim, estimator spread, AWGN robustness, Lipschitz audit,
reconstruction and samples -- each one records ``n/a`` with the reason instead of failing the cell when a
model cannot do it (Zha's published attention: a fixed-point inverse that does not converge, a log-det
estimate that is not finite)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.errors import ConvergenceError, NonFiniteError
from ..diagnostics.lipschitz import jacobian_norm
from ..flows.logdet import LogDetConfig
from ..flows.residual import ResidualBlock
from ..metrics.likelihood import evaluate_bpd, reconstruction_error
from ..metrics.robustness import bits_per_dim_under_awgn, estimator_spread
from .spec import CellContext, CellData

FAILURES = (ConvergenceError, NonFiniteError)


def _na(exc: Exception) -> str:
    return f"n/a ({type(exc).__name__}: {str(exc)[:160]})"


@dataclass
class GuardedBitsPerDim:
    """Test bits/dim (``test_bpd``, ``test_bpd_sem``, ``n_test``), NaN plus ``test_bpd_note`` if not finite.

    A model whose blocks use the biased truncated series (the i-ResNet rows, as published) is
    also scored with the unbiased roulette estimator (``test_bpd_unbiased``; Poisson λ = 2 beyond
    ``n_exact_eval`` exact terms)."""

    batch_size: int = 256
    n_exact_eval: int = 20
    name: str = "bits_per_dim"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            ev = evaluate_bpd(model, data.test, batch_size=self.batch_size)
        except FAILURES as exc:
            return {"test_bpd": math.nan, "test_bpd_sem": math.nan, "n_test": len(data.test), "test_bpd_note": _na(exc)}
        out = {"test_bpd": ev["bpd"], "test_bpd_sem": ev["bpd_sem"], "n_test": ev["n"],
               "eval_seconds": time.perf_counter() - t0}
        blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
        if any(b.logdet_cfg.method == "series" for b in blocks):
            saved = [b.logdet_cfg for b in blocks]
            try:
                for b in blocks:
                    b.logdet_cfg = LogDetConfig(n_exact_eval=self.n_exact_eval)
                out["test_bpd_unbiased"] = evaluate_bpd(model, data.test, batch_size=self.batch_size)["bpd"]
            except FAILURES as exc:
                out["test_bpd_unbiased"], out["test_bpd_unbiased_note"] = math.nan, _na(exc)
            finally:
                for b, cfg in zip(blocks, saved):
                    b.logdet_cfg = cfg
        return out


@dataclass
class EstimatorSpread:
    """Spread of test bits/dim over log-det estimator draws: ``estimator_spread`` (dict)."""

    n: int = 64
    repeats: int = 5
    name: str = "estimator_spread"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        return {"estimator_spread": estimator_spread(model, data.test[: self.n], self.repeats)}


@dataclass
class AWGNRobustness:
    """Bits/dim of ``n`` test images under AWGN at ``sigmas`` (pixel units): ``awgn`` (dict of lists)."""

    sigmas: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0, 25.0)
    n: int = 128
    name: str = "awgn"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        try:
            return {"awgn": bits_per_dim_under_awgn(model, data.test[: self.n], tuple(self.sigmas))}
        except FAILURES as exc:
            return {"awgn": {"sigma": list(self.sigmas), "note": _na(exc)}}


@dataclass
class LipschitzAudit:
    """Per residual block: the certified ``Lip(g)`` and the largest local slope ``‖J_g‖₂`` measured by power
    iteration at the block's actual inputs on ``n`` test images: ``lipschitz`` (dict)."""

    n: int = 4
    iters: int = 10
    name: str = "lipschitz"

    @torch.no_grad()
    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
        inputs: dict[str, torch.Tensor] = {}
        handles = [b.register_forward_pre_hook(lambda mod, args, name=b.name: inputs.setdefault(name, args[0].detach()))
                   for b in blocks]
        try:
            torch.manual_seed(0)
            model.eval()
            x = model.dequantize(data.test[: self.n].to(next(model.parameters()).device))
            try:
                model.log_prob(x)
            except FAILURES:
                pass
        finally:
            for h in handles:
                h.remove()
        certified, measured = {}, {}
        for b in blocks:
            certified[b.name] = b.lipschitz_bound()
            if b.name in inputs:
                with torch.enable_grad():
                    measured[b.name] = float(jacobian_norm(b.g, inputs[b.name], iters=self.iters).max())
        finite = [v for v in measured.values() if math.isfinite(v)]
        return {"lipschitz": {"certified": certified, "measured": measured,
                              "max_certified": max(certified.values()) if certified else math.nan,
                              "max_measured": max(finite) if finite else math.nan}}


@dataclass
class GuardedReconstruction:
    """``reconstruction_max_abs_err`` of ``n`` test images, or its ``n/a`` reason."""

    n: int = 16
    name: str = "reconstruction"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        try:
            return {"reconstruction_max_abs_err": reconstruction_error(model, data.test, self.n)}
        except FAILURES as exc:
            return {"reconstruction_max_abs_err": math.nan, "reconstruction_note": _na(exc)}


@dataclass
class GuardedSampleGrid:
    """Sample grid under ``samples/<key>.png`` (``samples``), or only the ``n/a`` reason in ``samples_note``."""

    temperatures: tuple[float, ...] = (0.7, 1.0)
    name: str = "samples"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        from .plots import save_sample_grid

        rel = f"samples/{ctx.key}.png"
        try:
            save_sample_grid(model, ctx.out_dir / rel, self.temperatures, ctx.spec.get("label", ctx.key))
        except FAILURES as exc:
            return {"samples_note": _na(exc)}  # no "samples" key: nothing to display
        return {"samples": rel}
