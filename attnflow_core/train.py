"""Deprecated import path: ``attnflow_core.train`` moved to :mod:`attnflow_core.training` (trainer, config),
:mod:`attnflow_core.metrics` (evaluation) and :mod:`attnflow_core.repro.provenance`. Thin re-exports."""
import warnings

from .data.batches import batch_indices
from .metrics.likelihood import evaluate_bpd, reconstruction_error
from .repro.provenance import git_commit, hardware_label
from .training import TrainConfig, TrainResult, fit, pick_device, train, warmup_factor

warnings.warn("attnflow_core.train is deprecated; import from attnflow_core.training / attnflow_core.metrics",
              DeprecationWarning, stacklevel=2)

__all__ = ["batch_indices", "evaluate_bpd", "reconstruction_error", "git_commit", "hardware_label", "TrainConfig",
           "TrainResult", "fit", "pick_device", "train", "warmup_factor"]
