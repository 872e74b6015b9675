"""Likelihood metrics: test bits/dim over a whole split, and the reconstruction error of the bijection."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.errors import NonFiniteError


@torch.no_grad()
def evaluate_bpd(model: nn.Module, images: Tensor, batch_size: int = 256, seed: int = 0,
                 progress: bool = False, cond: Tensor | None = None) -> dict[str, float]:
    """Test bits/dim over the whole split (last partial batch included), seeded dequantisation.

    Returns the mean, its standard error and the count. ``cond[i]`` conditions ``images[i]`` if given.
    The global RNG states are restored afterwards; the model is left in eval mode.
    """
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    vals = []
    # the caller's CPU (and CUDA) random streams are left as they were
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in tqdm(range(0, images.shape[0], batch_size), disable=not progress, desc="eval"):
            x = images[i:i + batch_size].to(device)
            bpd = model.bits_per_dim(x) if cond is None else model.bits_per_dim(x, cond[i:i + batch_size].to(device))
            vals.append(bpd.double().cpu())
    v = torch.cat(vals)
    if not torch.isfinite(v).all():
        raise NonFiniteError(f"{int((~torch.isfinite(v)).sum())} test images got a non-finite bits/dim")
    return {"bpd": float(v.mean()), "bpd_sem": float(v.std() / math.sqrt(len(v))), "n": int(len(v))}


@torch.no_grad()
def reconstruction_error(model: nn.Module, images: Tensor, n: int = 64, cond: Tensor | None = None) -> float:
    """max |decode(encode(x)) − x| in model space over ``n`` dequantised test images."""
    device = next(model.parameters()).device
    x = model.dequantize(images[:n].to(device), noise=False)
    c = None if cond is None else cond[:n].to(device)
    zs, _, _ = model.encode(x, c)
    return float((model.decode(zs, c) - x).abs().max())
