r"""Bits/dim under additive white Gaussian noise, and the spread of a stochastic log-det estimator.

**AWGN protocol** (ACF's robustness study; its exact protocol was not available, so it is defined here):
for each ``σ`` (in 8-bit pixel units) the test images are perturbed as
:math:`\tilde x = \mathrm{clip}(\mathrm{round}(x + \sigma\varepsilon), 0, 255)` with one fixed draw
``ε ~ N(0, I)`` per image (generator seeded by ``seed``), **the same draw for every model and every σ**,
and scored by bits/dim with seeded dequantisation. Reported: bits/dim per ``σ`` and its increase over
``σ = 0``; the comparison between models is paired (same images, same noise).

**Estimator spread.** A model whose log-det is a random estimate (Russian roulette, Hutchinson probes)
gives a random bits/dim even for fixed dequantised inputs: :func:`estimator_spread` scores the same
dequantised images ``repeats`` times with different estimator seeds and reports the per-image standard
deviation (mean over images) and the standard deviation of the batch mean across repeats.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .likelihood import evaluate_bpd


def awgn_images(images: Tensor, sigma: float, seed: int = 0) -> Tensor:
    """uint8 images plus ``σ``-pixel Gaussian noise (one fixed draw per image for a given ``seed``), rounded and clipped."""
    if sigma == 0:
        return images
    eps = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    return torch.clamp(torch.round(images.float() + sigma * eps), 0, 255).to(torch.uint8)


def bits_per_dim_under_awgn(model: nn.Module, images: Tensor, sigmas: tuple[float, ...], seed: int = 0,
                            batch_size: int = 256) -> dict[str, list[float]]:
    """``{"sigma": [...], "bpd": [...], "bpd_sem": [...], "delta_bpd": [...]}`` (module docstring)."""
    bpd, sem = [], []
    for s in sigmas:
        ev = evaluate_bpd(model, awgn_images(images, s, seed), batch_size=batch_size, seed=seed)
        bpd.append(ev["bpd"])
        sem.append(ev["bpd_sem"])
    base = bpd[list(sigmas).index(0)] if 0 in sigmas else math.nan
    return {"sigma": list(sigmas), "bpd": bpd, "bpd_sem": sem, "delta_bpd": [b - base for b in bpd]}


@torch.no_grad()
def estimator_spread(model: nn.Module, images: Tensor, repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Spread of bits/dim over log-det estimator draws at fixed dequantised inputs (module docstring)."""
    model.eval()
    device = next(model.parameters()).device
    state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        x = model.dequantize(images.to(device))
        d = model.dims
        runs = []
        for r in range(repeats):
            torch.manual_seed(seed + 1 + r)
            lp = model.log_prob(x) - d * math.log(256.0)
            runs.append((-lp / (d * math.log(2.0))).double().cpu())
    finally:
        torch.set_rng_state(state)
    v = torch.stack(runs)  # (repeats, n)
    return {"per_image_std": float(v.std(0).mean()), "mean_std": float(v.mean(1).std()),
            "repeats": repeats, "n": int(v.shape[1])}
