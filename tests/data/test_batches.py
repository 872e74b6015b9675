"""Batch sources: deterministic per step, epochs cover the data once, paired and map-style sources agree."""
import pytest
import torch

from attnflow_core.core import DataError
from attnflow_core.data import DatasetBatches, FileListDataset, PairedImages, TensorBatches, batch_indices


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(100, 10, s, seed=3) for s in range(10)])
    assert sorted(seen.tolist()) == list(range(100))
    assert torch.equal(batch_indices(100, 10, 4, 3), batch_indices(100, 10, 4, 3))
    assert not torch.equal(batch_indices(100, 10, 10, 3), batch_indices(100, 10, 0, 3))  # new epoch, new order


def test_paired_batches_stay_paired():
    x = torch.arange(20).view(20, 1, 1, 1)
    cond = 100 + torch.arange(20).view(20, 1, 1, 1)
    bx, bc = TensorBatches(x, cond).batch(3, 4, seed=1)
    assert torch.equal(bc - 100, bx)


def test_map_style_source_equals_in_memory_source():
    x = torch.randint(0, 255, (30, 1, 2, 2), dtype=torch.uint8)
    cond = torch.randn(30, 2, 2, 2)
    mem = TensorBatches(x, cond)
    lazy = DatasetBatches(PairedImages(x, cond, "toy", "train"))
    files = DatasetBatches(FileListDataset(list(range(30)), lambda i: (x[i], cond[i])))
    for step in (0, 5, 9):
        a, b, c = mem.batch(step, 8, 0), lazy.batch(step, 8, 0), files.batch(step, 8, 0)
        for u, v, w in zip(a, b, c):
            assert torch.equal(u, v) and torch.equal(u, w)


def test_mismatched_pairs_and_empty_sets_are_refused():
    with pytest.raises(DataError, match="3 inputs but 2 conditions"):
        TensorBatches(torch.zeros(3, 1), torch.zeros(2, 1))
    with pytest.raises(DataError, match="no samples"):
        FileListDataset([], lambda i: i, name="no samples here")
