"""Data-parallel training of one run on several processes (``torchrun``): DistributedDataParallel with NCCL
on GPUs and gloo on CPUs.

Equivalence with one process: a run on ``W`` processes with ``batch_size = B`` trains on the same global
batches as one process with ``B``. Every rank draws the global batch indices of step ``s`` from
``(seed, s)`` (:func:`~attnflow_core.data.batches.batch_indices`) and reads its own contiguous ``B / W`` of
them. The loss of each rank is the mean over its shard, and DDP averages the gradients, so for a loss that is
a mean over samples

.. math:: \\frac1W \\sum_r \\nabla \\frac{W}{B} \\sum_{i \\in \\mathrm{shard}_r} \\ell_i
          = \\nabla \\frac1B \\sum_{i=1}^{B} \\ell_i,

the one-process gradient (up to rounding); clipping, the optimiser and the hooks then run identically on
every rank. Data-dependent initialisation (ActNorm, :class:`~attnflow_core.nn.norm.InitFlagMixin`) runs
before the model is wrapped, on the *global* first batch with the one-process RNG state, on every rank, so
it sets exactly the one-process values; DDP's construction then broadcasts rank 0's parameters and buffers.
Random draws inside the objective (dequantisation noise) come from a per-rank seed of ``(seed, s, rank)``:
they match one process in distribution, not bit for bit (a deterministic objective matches to rounding).

Checkpoints hold the unwrapped model's state and are written by rank 0 only: they do not depend on the world
size, so a run resumes on any number of processes (``batch_size`` is the global batch and stays).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..core.errors import DataError
from ..data.batches import Batch, BatchSource, batch_indices, step_seed

# rank 0 evaluates a finished cell (sample quality can take an hour) while the others wait in a barrier
TIMEOUT = timedelta(hours=6)


def world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str = "auto") -> bool:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ...):
    NCCL when training on GPUs (each rank on GPU ``LOCAL_RANK``), gloo on CPUs. True if a group of more
    than one process is up; a single process (or no ``torchrun``) stays as it is."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return world()[1] > 1
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if gpu else "gloo", timeout=TIMEOUT)
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def shard_batch(batches: BatchSource, step: int, batch_size: int, seed: int, rank: int, size: int) -> Batch:
    """This rank's contiguous ``1/size`` of the global batch of ``step`` (only its samples are read)."""
    idx = batch_indices(len(batches), batch_size, step, seed)
    if idx.numel() % size:
        raise DataError(f"a global batch of {idx.numel()} samples does not split over {size} processes; "
                        f"choose a batch size (and data set of at least that size) divisible by the world size")
    per = idx.numel() // size
    return batches.take(idx[rank * per:(rank + 1) * per])


def rank_seed(seed: int, step: int, rank: int) -> int:
    """The RNG seed of ``rank`` at ``step``: rank 0 keeps the one-process seed."""
    return (step_seed(seed, step) + rank * 0x9E3779B97F4A7C15) % (2**63 - 1)


def prepare(model: nn.Module, objective: Callable[[nn.Module, Batch], Tensor], global_batch: Batch) -> bool:
    """Before wrapping: one forward and backward on the global batch (with the one-process RNG state set by
    the caller), which runs any pending data-dependent initialisation exactly as one process's first step
    would. Returns whether some parameter got no gradient (DDP must then look for unused ones every step).
    The gradients are discarded (the trainer zeroes them before each backward)."""
    objective(model, global_batch).backward()
    unused = any(p.requires_grad and p.grad is None for p in model.parameters())
    model.zero_grad(set_to_none=True)
    return unused


class _Objective(nn.Module):
    """The objective as a module, so the loss is computed inside DDP's forward (which arms the gradient
    all-reduce); its parameters are the model's."""

    def __init__(self, model: nn.Module, objective: Callable[[nn.Module, Batch], Tensor]) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, batch: Batch) -> Tensor:
        return self.objective(self.model, batch)


def wrap(model: nn.Module, objective: Callable[[nn.Module, Batch], Tensor], device: torch.device,
         find_unused: bool = False) -> nn.Module:
    """``loss = wrapped(batch)`` with gradients averaged over the ranks; ``find_unused`` (see :func:`prepare`):
    a model that leaves a branch out of the loss, which DDP then finds every step, at some cost."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(_Objective(model, objective), device_ids=[device.index or 0]
                                   if device.type == "cuda" else None, find_unused_parameters=find_unused)


def agree(loss_value: float, stop: bool, device: torch.device) -> tuple[float, bool]:
    """The mean loss over the ranks and whether any rank asks to stop (one all-reduce), so every rank
    logs the global loss and they break out of the loop (or raise) together."""
    t = torch.tensor([loss_value, float(stop)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    _, size = world()
    return float(t[0]) / size, bool(t[1] > 0)
