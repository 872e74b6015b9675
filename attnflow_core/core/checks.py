"""Input checks shared by every layer and model.

``check_image`` and ``check_cond`` look only at shapes (no host-device sync, safe inside ``forward``);
``check_finite`` reads values (one sync), so models call it once at their entry points.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import FlowError


def check_image(x: Tensor, channels: int | None = None, name: str = "input") -> None:
    """``x`` must be a ``(B, C, H, W)`` tensor, with ``C == channels`` when given."""
    if not isinstance(x, Tensor):
        raise FlowError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise FlowError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise FlowError(
            f"{name} has {x.shape[1]} channels but this layer was built for {channels} "
            f"(shape {tuple(x.shape)})"
        )


def check_cond(cond: Tensor | None, cond_channels: int, x: Tensor, layer: str) -> None:
    """A conditional layer needs ``cond`` of shape ``(B, cond_channels, H, W)`` matching ``x``."""
    if cond_channels == 0:
        return
    if cond is None:
        raise FlowError(f"{layer} was built with cond_channels={cond_channels} but got cond=None")
    if not isinstance(cond, Tensor) or cond.dim() != 4 or cond.shape[0] != x.shape[0] \
            or cond.shape[1] != cond_channels or cond.shape[2:] != x.shape[2:]:
        got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
        raise FlowError(
            f"{layer}: cond must have shape ({x.shape[0]}, {cond_channels}, {x.shape[2]}, {x.shape[3]}), "
            f"got {got}"
        )


def check_finite(x: Tensor, name: str = "input") -> None:
    """Raise :class:`FlowError` if ``x`` holds NaN or Inf (one host sync: call at model entry)."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise FlowError(f"{name} contains {n_bad} non-finite value(s) (NaN or Inf) out of {x.numel()}; "
                        f"check the data pipeline (a division by zero, a failed image decode)")


def check_model_space(x: Tensor, name: str = "input", hint: str = "") -> None:
    """``x`` must be a float tensor with values in model space ``[-0.5, 0.5]`` (one host sync)."""
    if not torch.is_floating_point(x):
        raise FlowError(f"{name} must be a float tensor in model space [-0.5, 0.5], got dtype {x.dtype}"
                        + (f"; {hint}" if hint else ""))
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if lo < -0.5 or hi > 0.5:
        raise FlowError(f"{name} must lie in model space [-0.5, 0.5], got range [{lo:.4g}, {hi:.4g}]"
                        + (f"; {hint}" if hint else ""))
