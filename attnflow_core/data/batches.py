"""Deterministic batch sources: the batch of training step ``s`` depends only on ``(seed, s)``.

The trainer asks a source for ``batch(step, batch_size, seed)``. A batch is a tensor ``x`` or an
``(x, cond)`` pair (conditional data: LR/HR, label/photo). Steps are grouped into epochs of seeded
permutations (the last partial batch of an epoch is dropped), so a run killed and resumed at any step
sees exactly the batches an uninterrupted run sees.

* :class:`TensorBatches` -- everything in memory (digits / MNIST / CIFAR-10 images, small paired sets);
* :class:`DatasetBatches` -- a map-style dataset read item by item (data sets too big for memory).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.errors import DataError

Batch = Tensor | tuple[Tensor, Tensor]


def step_seed(seed: int, step: int) -> int:
    """A seed derived from ``(seed, step)`` (the trainer re-seeds the global RNG with it every step)."""
    return (seed * 1_000_003 + step * 7_919 + 17) % (2**63 - 1)


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Indices of the batch of ``step``: epochs of seeded permutations, last partial batch dropped."""
    per_epoch = max(n // batch_size, 1)
    epoch, j = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(seed, -1 - epoch)))
    bs = min(batch_size, n)
    return perm[j * bs:(j + 1) * bs]


class BatchSource:
    """``len(source)`` samples; ``source.batch(step, batch_size, seed)`` the batch of a step."""

    def __len__(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def take(self, idx: Tensor) -> Batch:  # pragma: no cover
        raise NotImplementedError

    def batch(self, step: int, batch_size: int, seed: int) -> Batch:
        return self.take(batch_indices(len(self), batch_size, step, seed))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one ``x`` (without the batch dimension)."""
        first = self.take(torch.tensor([0]))
        return tuple((first[0] if isinstance(first, tuple) else first).shape[1:])


class TensorBatches(BatchSource):
    """Batches of in-memory tensors ``x`` (and ``cond``, paired by index)."""

    def __init__(self, x: Tensor, cond: Tensor | None = None) -> None:
        if cond is not None and cond.shape[0] != x.shape[0]:
            raise DataError(f"paired data: {x.shape[0]} inputs but {cond.shape[0]} conditions")
        self.x, self.cond = x, cond

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx: Tensor) -> Batch:
        return self.x[idx] if self.cond is None else (self.x[idx], self.cond[idx])


def _stack(items: Sequence[Any]) -> Batch:
    if isinstance(items[0], tuple):
        return tuple(torch.stack([it[k] for it in items]) for k in range(len(items[0])))  # type: ignore[return-value]
    return torch.stack(list(items))


class DatasetBatches(BatchSource):
    """Batches read from a map-style dataset (``len`` and ``dataset[i]`` -> tensor or ``(x, cond)``)."""

    def __init__(self, dataset: Any, collate: Callable[[Sequence[Any]], Batch] = _stack) -> None:
        if len(dataset) == 0:
            raise DataError(f"{type(dataset).__name__} is empty")
        self.dataset, self.collate = dataset, collate

    def __len__(self) -> int:
        return len(self.dataset)

    def take(self, idx: Tensor) -> Batch:
        return self.collate([self.dataset[int(i)] for i in idx])
