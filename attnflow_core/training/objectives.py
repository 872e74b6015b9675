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


class JointBitsPerDim:
    r"""Loss of two-flow conditional models (Full-Glow): :math:`\mathrm{mean\ bpd}(x \mid c) + w\,\mathrm{mean\ bpd}(c)`,
    from ``model.joint_bits_per_dim(x, cond) -> (bpd(c), bpd(x | c))``, with ``w = left_weight`` (default:
    the model config's ``left_weight``; Full-Glow's reference uses 1e-4). The condition's own flow is
    trained jointly through the second term."""

    name = "joint_bpd"

    def __init__(self, left_weight: float | None = None) -> None:
        self.left_weight = left_weight

    def __call__(self, model: nn.Module, batch: Batch) -> Tensor:
        x, cond = split_batch(batch)
        w = self.left_weight if self.left_weight is not None else model.config.left_weight
        bpd_cond, bpd_x = model.joint_bits_per_dim(x, cond)
        return bpd_x.mean() + w * bpd_cond.mean()
