r"""Table 4's protocol: SR samples at several temperatures, scored by PSNR, SSIM, LR-PSNR and LPIPS.

For every test pair ``(hr, lr)`` and temperature ``τ`` the model draws one SR image (latents from
``N(0, τ²)``, seeded); each metric is averaged over the images at each ``τ`` and then over the
temperatures (the paper averages over τ = 0.1 … 0.9). The bicubic baseline is ``imresize(lr, 8)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..core.errors import FlowError
from ..data.resize import imresize
from ..data.superres import SCALE, check_x8_pair
from .restoration import LPIPS, lr_psnr, mean_finite, psnr, ssim

PAPER_TEMPERATURES = tuple(round(0.1 * k, 1) for k in range(1, 10))
METRICS = ("psnr", "ssim", "lr_psnr", "lpips")


def score(hr: Tensor, lr: Tensor, sr: Tensor, lpips: LPIPS | None = None) -> dict[str, Tensor]:
    """Per-image metrics of uint8 SR images against their HR and LR (LPIPS only when available)."""
    out = {"psnr": psnr(hr, sr), "ssim": ssim(hr, sr), "lr_psnr": lr_psnr(lr, sr, SCALE)}
    if lpips is not None and lpips.available:
        out["lpips"] = lpips(hr, sr)
    return out


def _summary(per: dict[str, list[Tensor]]) -> dict[str, float | None]:
    return {m: (mean_finite(torch.cat(per[m])) if per.get(m) else None) for m in METRICS}


@torch.no_grad()
def evaluate_bicubic(hr: Tensor, lr: Tensor, lpips: LPIPS | None = None, batch_size: int = 64) -> dict[str, Any]:
    """The bicubic baseline's metrics (``imresize(lr, 8)``) over a test set."""
    check_x8_pair(hr, lr, "bicubic baseline")
    per: dict[str, list[Tensor]] = {m: [] for m in METRICS}
    for i in range(0, hr.shape[0], batch_size):
        h, lo = hr[i:i + batch_size], lr[i:i + batch_size]
        for k, v in score(h, lo, imresize(lo, float(SCALE)), lpips).items():
            per[k].append(v)
    return _summary(per)


@torch.no_grad()
def evaluate_sr(model: nn.Module, hr: Tensor, lr: Tensor, temperatures: Sequence[float] = PAPER_TEMPERATURES,
                batch_size: int = 16, seed: int = 0, lpips: LPIPS | None = None, keep: int = 0) -> dict[str, Any]:
    """Metrics of ``model.super_resolve`` over the test pairs at each temperature, and their averages.

    Returns ``{"by_temperature": [{"temperature", "psnr", "ssim", "lr_psnr", "lpips"}, …], "psnr": …,
    "ssim": …, "lr_psnr": …, "lpips": … (None where unavailable), "n": …, "examples": {τ: uint8 SR of
    the first ``keep`` images}}``. The global RNG is restored afterwards.
    """
    check_x8_pair(hr, lr, "evaluate_sr")
    if hr.dtype != torch.uint8 or lr.dtype != torch.uint8:
        raise FlowError(f"evaluate_sr expects uint8 HR and LR images, got {hr.dtype} and {lr.dtype}")
    temps = [float(t) for t in temperatures]
    if not temps:
        raise FlowError("evaluate_sr needs at least one temperature")
    model.eval()
    device = next(model.parameters()).device
    per: dict[float, dict[str, list[Tensor]]] = {t: {m: [] for m in METRICS} for t in temps}
    examples: dict[float, list[Tensor]] = {t: [] for t in temps}
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    torch.manual_seed(seed)
    try:
        for i in range(0, hr.shape[0], batch_size):
            h, lo = hr[i:i + batch_size], lr[i:i + batch_size]
            srs = model.super_resolve(lo.to(device), temps)
            for t, sr in zip(temps, srs):
                sr = sr.cpu()
                for k, v in score(h, lo, sr, lpips).items():
                    per[t][k].append(v)
                if i < keep:
                    examples[t].append(sr[: keep - i])
    finally:
        torch.set_rng_state(state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
    rows = [{"temperature": t, **_summary(per[t])} for t in temps]
    avg = {m: (None if any(r[m] is None for r in rows) else sum(r[m] for r in rows) / len(rows)) for m in METRICS}
    return {"by_temperature": rows, **avg, "n": int(hr.shape[0]),
            "examples": {t: torch.cat(v) for t, v in examples.items() if v}}
