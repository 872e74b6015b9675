"""Evaluators that table specs hand to the cell runner: ``evaluator(model, data, ctx) -> dict``."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..metrics.likelihood import evaluate_bpd, reconstruction_error
from .spec import CellContext, CellData


@dataclass
class TestBitsPerDim:
    """Bits/dim of the whole test split (seeded dequantisation): ``test_bpd``, ``test_bpd_sem``, ``n_test``."""

    batch_size: int = 256
    name: str = "bits_per_dim"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        t0 = time.perf_counter()
        ev = evaluate_bpd(model, data.test, batch_size=self.batch_size, cond=data.test_cond)
        return {"test_bpd": ev["bpd"], "test_bpd_sem": ev["bpd_sem"], "n_test": ev["n"],
                "eval_seconds": time.perf_counter() - t0}


@dataclass
class Reconstruction:
    """max |decode(encode(x)) − x| over the first ``n`` test images: ``reconstruction_max_abs_err``."""

    n: int = 64
    name: str = "reconstruction"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        cond = None if data.test_cond is None else data.test_cond
        return {"reconstruction_max_abs_err": reconstruction_error(model, data.test, self.n, cond=cond)}


@dataclass
class SampleGrid:
    """A grid of samples per temperature, saved under ``samples/<key>.png``: ``samples`` (relative path)."""

    temperatures: tuple[float, ...] = (0.5, 0.7, 1.0)
    name: str = "samples"

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        from .plots import save_sample_grid

        rel = f"samples/{ctx.key}.png"
        save_sample_grid(model, ctx.out_dir / rel, self.temperatures, ctx.spec.get("label", ctx.key))
        return {"samples": rel}
