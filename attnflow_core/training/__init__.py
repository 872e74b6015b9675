"""Training: the resumable, deterministic trainer, its configuration, objectives, checkpoints and hooks.

Belongs here: ``fit(model, batches, config, run_dir, objective=, hooks=)``, ``TrainConfig`` (optimiser,
schedule, budget), objectives (bits/dim, conditional and joint bits/dim; residual flows estimate theirs), atomic
checkpoints with clear errors. Not here: which experiments to run (``repro``), metrics (``metrics``).
Imports ``core``, ``data`` and ``models``.
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, pick_device, warmup_factor
from .objectives import BitsPerDim, split_batch
from .trainer import TrainResult, fit, train

__all__ = ["load_checkpoint", "save_checkpoint", "TrainConfig", "pick_device", "warmup_factor", "BitsPerDim",
           "split_batch", "TrainResult", "fit", "train"]
