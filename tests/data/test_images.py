"""The unconditional image data sets: the registry, splits, conventions, the data root and clear errors."""
import pytest
import torch

from attnflow_core.core import DataError, DataNotFoundError
from attnflow_core.data import DATASETS, dataset_shape, load_dataset, resolve_root

ROOT = resolve_root()  # the package's data root: $ATTNFLOW_DATA, else ~/.cache/attnflow/data


def test_registry_knows_the_image_sets():
    assert {"digits", "mnist", "cifar10"} <= set(DATASETS.names())
    with pytest.raises(DataError, match="unknown data set 'svhn'"):
        load_dataset("svhn")
    with pytest.raises(DataError, match="split"):
        load_dataset("digits", "validation")


def test_digits_split_is_deterministic_and_disjoint(digits):
    tr, te = digits
    assert tr.images.dtype == torch.uint8 and tr.shape == (1, 8, 8)
    assert len(tr) + len(te) == 1797
    assert torch.equal(tr.images, load_dataset("digits", "train").images)
    assert len(tr) > 1000 and len(te) > 300


def test_validation_split_is_held_out_of_train_the_same_for_every_seed():
    full = load_dataset("digits", "train").images
    tr = load_dataset("digits", "train", val_size=200).images
    va = load_dataset("digits", "val", val_size=200).images
    assert len(tr) + len(va) == len(full) and len(va) == 200
    rows = {bytes(x.numpy()) for x in full}
    assert {bytes(x.numpy()) for x in tr} | {bytes(x.numpy()) for x in va} <= rows
    # disjoint by index: no image of val is at the place of a train image (digits has duplicates by value)
    held = torch.tensor([any(torch.equal(x, v) for v in va) for x in full[:100]])
    assert held.any() and not held.all()
    assert torch.equal(va, load_dataset("digits", "val", val_size=200, seed=5).images)  # the run seed does not move it
    assert torch.equal(load_dataset("digits", "test", val_size=200).images, load_dataset("digits", "test").images)
    with pytest.raises(DataError, match="val_size"):
        load_dataset("digits", "val")
    with pytest.raises(DataError, match="val_size=5000"):
        load_dataset("digits", "train", val_size=5000)


def test_padded_convention_shapes():
    assert dataset_shape("mnist", "padded") == (3, 32, 32)
    assert dataset_shape("mnist", "standard") == (1, 28, 28)
    d = load_dataset("digits", "test", convention="padded", limit=5)
    assert d.images.shape == (5, 3, 8, 8) and torch.equal(d.images[:, 0], d.images[:, 2])


@pytest.mark.skipif(not (ROOT / "mnist").is_dir(), reason=f"no MNIST copy under the data root {ROOT}")
def test_mnist_both_conventions_from_data_root():
    std = load_dataset("mnist", "test", root=ROOT, limit=10)
    pad = load_dataset("mnist", "test", root=ROOT, convention="padded", limit=10)
    assert std.images.shape == (10, 1, 28, 28) and pad.images.shape == (10, 3, 32, 32)
    assert torch.equal(pad.images[:, 1, 2:30, 2:30], std.images[:, 0])
    assert pad.images[:, :, :2].sum() == 0


@pytest.mark.skipif(not (ROOT / "cifar10").is_dir(), reason=f"no CIFAR-10 copy under the data root {ROOT}")
def test_cifar10_from_data_root():
    te = load_dataset("cifar10", "test", root=ROOT, limit=7)
    assert te.images.shape == (7, 3, 32, 32) and te.images.dtype == torch.uint8


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="cifar10_train.npz"):
        load_dataset("cifar10", root=tmp_path)


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNFLOW_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DataNotFoundError, match="elsewhere"):
        load_dataset("mnist")
