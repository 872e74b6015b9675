"""The one layer protocol every flow layer follows.

Direction contract (written once, here):

* ``forward(x, cond=None) -> (y, logdet)`` maps data towards the latent space and
  returns ``logdet = log|det dy/dx|`` with shape ``(B,)``: one value per sample,
  never a batch mean.
* ``inverse(y, cond=None) -> x`` undoes ``forward`` exactly (up to floating point).

``cond`` is an optional conditioning tensor (the LR features of SRFlow, the left
Glow's activations of Full-Glow, ...). Unconditional layers accept it and ignore it,
so conditional and unconditional layers compose in one :class:`FlowSequence`.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn


class FlowError(ValueError):
    """Bad input to a flow: wrong shape, channel count, non-finite values, ..."""


class NonFiniteError(FloatingPointError):
    """A loss, log-density or log-determinant became NaN or infinite."""


class FlowLayer(nn.Module):
    """Base class of all invertible layers (see the module docstring for the contract)."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class FlowSequence(FlowLayer):
    """Composition ``f_n ∘ ... ∘ f_1``; the log-determinants add up."""

    def __init__(self, layers: Iterable[FlowLayer] = ()) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y, cond)
        return y

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> FlowLayer:
        return self.layers[i]


def check_image(x: Tensor, channels: int | None = None, name: str = "input") -> None:
    """Shape checks that need no host-device sync (safe inside forward)."""
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
    """A conditional layer needs ``cond`` of shape (B, cond_channels, H, W) matching ``x``."""
    if cond_channels == 0:
        return
    if cond is None:
        raise FlowError(f"{layer} was built with cond_channels={cond_channels} but got cond=None")
    if cond.dim() != 4 or cond.shape[0] != x.shape[0] or cond.shape[1] != cond_channels \
            or cond.shape[2:] != x.shape[2:]:
        raise FlowError(
            f"{layer}: cond must have shape ({x.shape[0]}, {cond_channels}, {x.shape[2]}, {x.shape[3]}), "
            f"got {tuple(cond.shape)}"
        )


def check_finite(x: Tensor, name: str = "input") -> None:
    """Raise :class:`FlowError` if ``x`` holds NaN or Inf (one host sync: call at model entry)."""
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise FlowError(f"{name} contains {n_bad} non-finite value(s) (NaN or Inf)")


def sum_except_batch(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flatten_latents(zs: Sequence[Tensor]) -> Tensor:
    return torch.cat([z.reshape(z.shape[0], -1) for z in zs], dim=1)
