"""What keeps a long run honest: an exponential moving average of the weights, a loss-spike guard, and
validation-based checkpoint selection. :func:`~attnflow_core.training.trainer.fit` uses all three when its
:class:`~attnflow_core.training.TrainConfig` asks (``ema_decay``, ``spike_factor``, ``eval_every``); with
their defaults (``None``) a run is exactly what it was without them.

*EMA.* After optimiser step ``t`` (1-based) the average is
:math:`\\bar\\theta_t = d_t\\,\\bar\\theta_{t-1} + (1 - d_t)\\,\\theta_t` with
:math:`d_t = \\min(d, (1 + t) / (10 + t))`: the warm-up keeps the average from remembering the first steps
(and the data-dependent ActNorm initialisation happens before step 1, so the average starts after it).
Buffers (spectral-norm vectors, initialisation flags) are copied, not averaged.

*Spikes.* A step's loss is a spike if it is not finite, or if at least ``window // 5`` earlier losses
are known and it exceeds ``spike_factor`` × their median. The trainer then restores the last good
snapshot (taken every ``snapshot_every`` steps and at every checkpoint and validation), multiplies the
learning rate by ``spike_lr_factor`` from then on, and records the event; after ``max_spikes`` events the
run is declared diverged (:class:`~attnflow_core.core.errors.NonFiniteError`), never silently averaged in.
"""
from __future__ import annotations

import copy
import math
import statistics
from collections import deque
from typing import Any

import torch
from torch import nn


class EMA:
    """Exponential moving average of a model's floating-point parameters (buffers follow the model)."""

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.state: dict[str, torch.Tensor] | None = None  # None until the first update
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        live = model.state_dict()
        self.updates += 1
        if self.state is None:
            self.state = {k: v.detach().clone() for k, v in live.items()}
            return
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        params = {n for n, _ in model.named_parameters()}
        avg = [k for k in live if k in params and live[k].is_floating_point()]
        torch._foreach_mul_([self.state[k] for k in avg], d)
        torch._foreach_add_([self.state[k] for k in avg], [live[k].detach() for k in avg], alpha=1.0 - d)
        for k, v in live.items():
            if k not in params or not v.is_floating_point():
                self.state[k].copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "state": self.state, "updates": self.updates}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.decay, self.state, self.updates = sd["decay"], sd["state"], sd["updates"]


class swapped:
    """``with swapped(model, state):`` the model holds ``state`` inside the block, its own weights after."""

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor] | None) -> None:
        self.model, self.state, self.saved = model, state, None

    def __enter__(self) -> nn.Module:
        if self.state is not None:
            self.saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.state)
        return self.model

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            self.model.load_state_dict(self.saved)


class SpikeGuard:
    """Decides whether a loss is a spike (see the module docstring) from the last ``window`` good losses."""

    def __init__(self, factor: float, window: int = 100) -> None:
        if not factor > 1.0:
            raise ValueError(f"spike_factor must be > 1, got {factor}")
        self.factor, self.window = factor, window
        self.recent: deque[float] = deque(maxlen=window)

    def is_spike(self, loss: float) -> tuple[bool, float]:
        """``(spike?, the median it was compared with)``; a good loss joins the window."""
        if not math.isfinite(loss):
            return True, statistics.median(self.recent) if self.recent else math.nan
        if len(self.recent) >= max(1, self.window // 5):
            med = statistics.median(self.recent)
            # losses of flows are bits/dim (positive); the ratio test needs a positive median
            if med > 0 and loss > self.factor * med:
                return True, med
        self.recent.append(loss)
        return False, math.nan

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent)}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.recent = deque(sd["recent"], maxlen=self.window)


def snapshot(model: nn.Module, opt: torch.optim.Optimizer, extra: dict[str, Any]) -> dict[str, Any]:
    """An in-memory copy of everything a restore needs (the model, the optimiser, the trainer's counters)."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(opt.state_dict()), **copy.deepcopy(extra)}
