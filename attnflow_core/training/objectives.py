"""Training objectives: ``objective(model, batch) -> scalar loss`` (a batch is ``x`` or ``(x, cond)``)."""
from __future__ import annotations

from torch import Tensor, nn

from ..data.batches import Batch


def split_batch(batch: Batch) -> tuple[Tensor, Tensor | None]:
    """``x`` -> ``(x, None)``; ``(x, cond)`` -> itself."""
    return (batch[0], batch[1]) if isinstance(batch, tuple) else (batch, None)


class BitsPerDim:
    """Mean bits/dim of 8-bit images under the model (``model.bits_per_dim(x, cond)``), dequantised."""

    name = "bpd"

    def __call__(self, model: nn.Module, batch: Batch) -> Tensor:
        x, cond = split_batch(batch)
        return model.bits_per_dim(x).mean() if cond is None else model.bits_per_dim(x, cond).mean()
