"""Training settings and the learning-rate schedule."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..core.errors import TrainingConfigError

OPTIMIZERS = ("adamax", "adam")
# settings that do not change what a finished run computes: left out of a checkpoint's identity
RUN_ONLY_FIELDS = ("steps", "time_budget_s", "device", "log_every", "checkpoint_every")
# optional settings left out of the identity while off (None), so older checkpoints still resume
PROTOCOL_FIELDS = ("decay_start", "eval_every", "ema_decay", "spike_factor")
SPIKE_FIELDS = ("spike_lr_factor", "max_spikes", "snapshot_every")


@dataclass
class TrainConfig:
    """Everything the trainer needs besides the model, the objective and the data.

    ``milestones`` are fractions of ``steps`` at which the learning rate is multiplied by ``gamma``
    (SRFlow halves it at 50/75/90/95 %); ``betas`` are Adam's (``None``: torch's defaults).
    ``decay_start`` (a fraction of ``steps``; ``None``: off) holds the learning rate constant until then and
    decays it linearly to 0 at ``steps`` (Full-Glow: constant for half of training, then linear to 0).
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 8e-4
    optimizer: str = "adamax"  # the mARFlow code's; the AttnFlow supplement says Adam
    warmup_steps: int = 200
    grad_clip: float = 50.0  # max global gradient norm; 0 disables
    checkpoint_every: int = 250
    seed: int = 0
    time_budget_s: float | None = None
    device: str = "auto"
    log_every: int = 25
    betas: tuple[float, float] | None = None
    milestones: tuple[float, ...] = field(default_factory=tuple)
    gamma: float = 0.5
    decay_start: float | None = None
    # the protocol of an honest comparison (training/stability.py); None: off, the run is as before
    eval_every: int | None = None  # validate every so many steps (and at the end); the best one is returned
    ema_decay: float | None = None  # validate (and return) an exponential moving average of the weights
    spike_factor: float | None = None  # a loss above this × the recent median is a spike: restore, lower lr
    spike_lr_factor: float = 0.5
    max_spikes: int = 5
    snapshot_every: int = 100

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise TrainingConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0 or self.checkpoint_every < 1 or self.log_every < 1:
            raise TrainingConfigError(f"invalid training config (steps >= 0, batch_size >= 1, lr > 0, "
                                      f"checkpoint_every >= 1, log_every >= 1 needed): {self}")
        if any(not 0 < m < 1 for m in self.milestones) or not self.gamma > 0:
            raise TrainingConfigError(f"milestones must be fractions in (0, 1) and gamma > 0, got "
                                      f"{self.milestones} and {self.gamma}")
        if self.decay_start is not None and not 0 <= self.decay_start < 1:
            raise TrainingConfigError(f"decay_start must be a fraction in [0, 1) or None, got {self.decay_start}")
        if self.eval_every is not None and self.eval_every < 1:
            raise TrainingConfigError(f"eval_every must be >= 1 or None, got {self.eval_every}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise TrainingConfigError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        if self.spike_factor is not None and (not self.spike_factor > 1 or not 0 < self.spike_lr_factor < 1
                                              or self.max_spikes < 0 or self.snapshot_every < 1):
            raise TrainingConfigError(f"spike handling needs spike_factor > 1, 0 < spike_lr_factor < 1, "
                                      f"max_spikes >= 0 and snapshot_every >= 1, got {self.spike_factor}, "
                                      f"{self.spike_lr_factor}, {self.max_spikes}, {self.snapshot_every}")

    def identity(self) -> dict:
        """The settings that decide the numbers (a checkpoint resumes only under the same identity)."""
        ident = {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_FIELDS}
        for k in PROTOCOL_FIELDS:  # configs from before these fields existed keep their identity
            if ident[k] is None:
                del ident[k]
        if self.spike_factor is None:
            for k in SPIKE_FIELDS:
                del ident[k]
        return ident

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "adamax":
            return torch.optim.Adamax(params, lr=self.lr, **({"betas": tuple(self.betas)} if self.betas else {}))
        return torch.optim.Adam(params, lr=self.lr, **({"betas": tuple(self.betas)} if self.betas else {}))

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based): linear warm-up, the milestones, then the
        linear decay to 0 from ``decay_start`` on."""
        lr = self.lr * warmup_factor(step, self.warmup_steps)
        for m in self.milestones:
            if step >= m * self.steps:
                lr *= self.gamma
        if self.decay_start is not None:
            start = self.decay_start * self.steps
            if step >= start:
                lr *= max(0.0, (self.steps - step) / max(self.steps - start, 1.0))
        return lr


def warmup_factor(step: int, warmup: int) -> float:
    """Linear learning-rate warm-up over ``warmup`` optimiser steps (steps, not samples)."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
