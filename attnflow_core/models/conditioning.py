r"""Conditioning: how a model turns its external ``cond`` into what each level and step sees.

A conditional model holds one :class:`Conditioner`. Per forward (or inverse) pass the model calls
``encoded = conditioner.encode(cond)`` once, then ``conditioner.route(encoded, level, step, shape)``
for every layer of every level (``step`` is the layer's index in the level's FlowSequence, the
squeeze being 0 and the flow steps 1..K; ``step=None`` would ask for what the level's prior sees, but the
engine's priors see only their context, so it does not ask). ``shape = (C, H, W)`` is the level's shape after
its squeeze. Routing is explicit: a conditioner decides, per level and per step, which tensor goes where.

* :class:`PooledConditioner` (the default, no parameters): the raw ``cond`` average-pooled to each
  level's size, the same for every step.
* :class:`EncoderConditioner`: a network trained jointly with the flow (SRFlow's RRDB slot) whose
  output is a list with one feature map per level (or a list of per-step lists); the conditioner hands
  level ``l`` its own entry. Subclass it, or pass ``router=``, to route differently.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError

Shape = tuple[int, int, int]


class Conditioner(nn.Module):
    """Base: ``encode`` once per pass, ``route`` per level/step (see the module docstring)."""

    def encode(self, cond: Tensor) -> Any:
        return cond

    def route(self, encoded: Any, level: int, step: int | None, shape: Shape) -> Tensor | None:
        raise NotImplementedError


class PooledConditioner(Conditioner):
    """The raw condition, average-pooled to each level's spatial size (identity if it already fits)."""

    def route(self, encoded: Tensor, level: int, step: int | None, shape: Shape) -> Tensor:
        h, w = shape[1:]
        return encoded if encoded.shape[-2:] == (h, w) else F.adaptive_avg_pool2d(encoded, (h, w))


class EncoderConditioner(Conditioner):
    """A jointly trained encoder whose outputs are routed to levels (and optionally steps) explicitly.

    ``encoder(cond)`` must return a sequence with one entry per level; an entry is a tensor (every step
    of that level sees it) or a sequence of tensors, one per step (``None`` = the level's prior gets
    nothing). ``router(encoded, level, step, shape)`` replaces that rule when given.
    """

    def __init__(self, encoder: nn.Module,
                 router: Callable[[Any, int, int | None, Shape], Tensor | None] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.router = router

    def encode(self, cond: Tensor) -> Any:
        return self.encoder(cond)

    def route(self, encoded: Any, level: int, step: int | None, shape: Shape) -> Tensor | None:
        if self.router is not None:
            return self.router(encoded, level, step, shape)
        if not isinstance(encoded, Sequence) or level >= len(encoded):
            raise FlowError(f"the conditioning encoder returned {type(encoded).__name__} of length "
                            f"{len(encoded) if isinstance(encoded, Sequence) else '?'}; level {level} needs an entry")
        entry = encoded[level]
        if isinstance(entry, Tensor) or entry is None:
            return entry
        if step is None:
            return None
        if step >= len(entry):
            raise FlowError(f"the conditioning encoder gives {len(entry)} step entries at level {level}; "
                            f"step {step} needs one")
        return entry[step]
