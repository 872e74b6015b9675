"""8× SR data: CelebA layouts on tiny fabricated folders (never real CelebA), HR → LR pairs, flips, the stand-in,
and clear errors for folders without images or partition file and for pairs that are not ×8."""
import numpy as np
import pytest
import torch
from PIL import Image

from attnflow_core.core import DataError, DataNotFoundError
from attnflow_core.data import DatasetBatches, TensorBatches
from attnflow_core.data.celeba import CelebASR, read_partition
from attnflow_core.data.resize import imresize
from attnflow_core.data.superres import (
    RandomHFlip,
    check_x8_pair,
    make_lr,
    sr_standin,
    standin_photos,
    standin_positions,
)


def _fake_celeba(root, n=6, kaggle=False, size=(218, 178)):
    """n random 178×218 JPEGs in CelebA's layout with a partition file: 000001–3 train, 4 val, 5–6 test."""
    rng = np.random.default_rng(0)
    img_dir = root / ("img_align_celeba/img_align_celeba" if kaggle else "img_align_celeba")
    img_dir.mkdir(parents=True)
    parts = [0, 0, 0, 1, 2, 2][:n]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(img_dir / f"{i + 1:06d}.jpg")
    if kaggle:
        (root / "list_eval_partition.csv").write_text(
            "image_id,partition\n" + "".join(f"{i + 1:06d}.jpg,{p}\n" for i, p in enumerate(parts)))
    else:
        (root / "Eval").mkdir()
        (root / "Eval" / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(parts)))
    return img_dir


@pytest.mark.parametrize("kaggle", [False, True], ids=["official_txt", "kaggle_csv"])
def test_aligned_celeba_pairs_streamed_with_the_matlab_bicubic(tmp_path, kaggle):
    img_dir = _fake_celeba(tmp_path, kaggle=kaggle)
    tr, va, te = (CelebASR(tmp_path, s) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (3, 1, 2)
    hr, lr = te[1]
    assert hr.dtype == lr.dtype == torch.uint8 and hr.shape == (3, 160, 160) and lr.shape == (3, 20, 20)
    raw = torch.from_numpy(np.array(Image.open(img_dir / "000006.jpg").convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(hr, imresize(raw[:, 20:198], size=(160, 160)))  # crop align178: rows 20..197
    assert torch.equal(lr, imresize(hr, 1 / 8))
    x, c = DatasetBatches(tr).batch(0, 2, seed=0)
    assert x.shape == (2, 3, 160, 160) and c.shape == (2, 3, 20, 20)


def test_ready_hr_crops_folder(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        (tmp_path / split).mkdir()
        for i in range(n):
            Image.fromarray(np.full((32, 32, 3), 10 * i, np.uint8)).save(tmp_path / split / f"{i}.png")
    ds = CelebASR(tmp_path, "test", hr_size=32)
    assert len(ds) == 2 and ds.crop == "ready" and ds[1][1].shape == (3, 4, 4)
    Image.fromarray(np.zeros((30, 32, 3), np.uint8)).save(tmp_path / "train" / "bad.png")
    with pytest.raises(DataError, match="bad.png is 30×32; a ready HR crop must be 32×32"):
        [CelebASR(tmp_path, "train", hr_size=32)[i] for i in range(4)]


def test_celeba_roots_without_images_or_partition_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNFLOW_CELEBA", raising=False)
    with pytest.raises(DataNotFoundError, match="img_align_celeba.*licence|CelebA images not found"):
        CelebASR(tmp_path, "train")
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(DataNotFoundError, match="CelebA images not found"):  # an empty folder
        CelebASR(tmp_path, "train")
    Image.fromarray(np.zeros((218, 178, 3), np.uint8)).save(tmp_path / "img_align_celeba" / "000001.jpg")
    with pytest.raises(DataNotFoundError, match="partition file not found"):
        CelebASR(tmp_path, "train")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n")
    with pytest.raises(DataNotFoundError, match="1 train images listed .* are not in"):
        CelebASR(tmp_path, "train")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg train\n")
    with pytest.raises(DataError, match="line 1: expected"):
        read_partition(tmp_path / "list_eval_partition.txt")
    with pytest.raises(DataError, match="split must be one of"):
        CelebASR(tmp_path, "validation")


def test_x8_pairs_and_flips():
    hr = torch.randint(0, 256, (6, 3, 16, 24), dtype=torch.uint8)
    lr = make_lr(hr)
    check_x8_pair(hr, lr)
    with pytest.raises(DataError, match="not a ×8 pair"):
        check_x8_pair(hr, lr[..., :2])
    with pytest.raises(DataError, match="channels"):
        check_x8_pair(hr, lr[:, :1])
    with pytest.raises(DataError, match="multiples of 8"):
        make_lr(hr[..., :12])
    src = RandomHFlip(TensorBatches(hr, lr))
    torch.manual_seed(5)
    x, c = src.batch(0, 6, seed=0)
    torch.manual_seed(5)
    x2, _ = src.batch(0, 6, seed=0)
    assert torch.equal(x, x2)  # deterministic under the trainer's per-step seeding
    assert torch.equal(make_lr(x), c)  # still pairs: bicubic ×8 commutes with the flip
    plain_x, _ = TensorBatches(hr, lr).batch(0, 6, seed=0)
    assert not torch.equal(x, plain_x)


def test_standin_is_disjoint_seeded_and_paired():
    shapes = [p.shape[1:] for p in standin_photos()]
    test = standin_positions("test", 64)
    train = standin_positions("train", 64, n_train=300)
    assert all(c == shapes[k][1] - 64 for k, _, c in test)
    assert all(c + 64 <= shapes[k][1] - 64 and r + 64 <= shapes[k][0] for k, r, c in train)  # left of the test strip
    assert len({k for k, _, _ in train}) == len(shapes)
    a, b = sr_standin("train", n_train=8), sr_standin("train", n_train=8)
    assert torch.equal(a.x, b.x) and a.x.shape == (8, 3, 64, 64) and torch.equal(a.cond, make_lr(a.x))
    te = sr_standin("test", n_test=5)
    assert len(te) == 5 and "stand-in" in te.note
