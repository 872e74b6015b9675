"""Cityscapes loaders on tiny fabricated folders in both layouts, and the no-download stand-in."""
import numpy as np
import pytest
import torch
from PIL import Image

from attnflow_core.core import DataError, DataNotFoundError
from attnflow_core.data import DatasetBatches
from attnflow_core.data.cityscapes import LABELS, CityscapesPairs, colors_to_ids, stack_pairs
from attnflow_core.data.standin import CLASS_COLORS, N_CLASSES, load_standin

ROAD, SKY, CAR = 7, 23, 26
COLOR = {i: c for i, _, c in LABELS}


def _ids(seed, h=16, w=32):
    ids = np.full((h, w), ROAD, np.uint8)
    ids[: h // 3] = SKY
    ids[h // 2:, seed % w: seed % w + 6] = CAR
    return ids


def _official(root, split="train", cities=("aachen", "bochum"), per_city=2, w=32, h=16):
    """Official layout: RGB photo, RGBA colour label, single-channel labelIds, 2:1 like the real ones."""
    stems = []
    for city in cities:
        for k in range(per_city):
            stem = f"{city}_{k:06d}_000019"
            ids = _ids(k + len(stems), h, w)
            photo = np.random.default_rng(k).integers(0, 256, (h, w, 3), dtype=np.uint8)
            color = np.zeros((h, w, 4), np.uint8)
            color[..., :3] = np.array([COLOR[i] for i in range(34)], np.uint8)[ids]
            color[..., 3] = 255
            for sub, name, arr, mode in (("leftImg8bit", "leftImg8bit", photo, "RGB"),
                                         ("gtFine", "gtFine_color", color, "RGBA"), ("gtFine", "gtFine_labelIds", ids, "L")):
                d = root / sub / split / city
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr, mode).save(d / f"{stem}_{name}.png")
            stems.append(stem)
    return stems


def _pix2pix(root, split="train", n=3, s=16):
    d = root / "cityscapes" / split
    d.mkdir(parents=True)
    for k in range(n):
        pair = np.zeros((s, 2 * s, 3), np.uint8)
        pair[:, :s] = 40 * k  # photo: a flat grey that numbers the pair
        pair[:, s:] = np.array([COLOR[i] for i in range(34)], np.uint8)[_ids(k, s, s)]
        Image.fromarray(pair).save(d / f"{k + 1}.jpg", quality=100, subsampling=0)
    return d


def test_official_colour_mode_is_full_glow_compatible(tmp_path):
    _official(tmp_path)
    ds = CityscapesPairs(tmp_path, "train", mode="color", size=8)
    assert ds.layout == "official" and len(ds) == 4 and ds.label_channels == 3
    x, c = ds[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 8, 8) and c.shape == (3, 8, 8)  # alpha dropped
    # what Full-Glow feeds its model: PIL bilinear resize of the colour PNG to size × size, alpha dropped
    label_file = next((tmp_path / "gtFine" / "train" / "aachen").glob("*000000*_color.png"))
    want = np.asarray(Image.open(label_file).convert("RGB").resize((8, 8), Image.BILINEAR)).transpose(2, 0, 1)
    assert torch.equal(c, torch.from_numpy(np.ascontiguousarray(want)))


def test_official_onehot_mode_and_streaming(tmp_path):
    _official(tmp_path)
    ds = CityscapesPairs(tmp_path, "train", mode="onehot", size=16)
    x, c = ds[1]
    assert c.shape == (34, 16, 16) and set(c.unique().tolist()) <= {0, 255}
    assert (c.sum(0) == 255).all()  # exactly one class per pixel
    ids = c.argmax(0)
    assert ids[0, 0] == SKY and ids[-1, 1:].eq(CAR).any() and ids[-1].eq(ROAD).any()
    batch = DatasetBatches(ds).batch(0, 2, seed=0)
    assert batch[0].shape == (2, 3, 16, 16) and batch[1].shape == (2, 34, 16, 16)


def test_unpaired_files_are_named(tmp_path):
    stems = _official(tmp_path)
    (tmp_path / "gtFine" / "train" / "aachen" / f"{stems[0]}_gtFine_color.png").unlink()
    extra = tmp_path / "gtFine" / "train" / "bochum" / "bochum_000777_000019_gtFine_color.png"
    Image.new("RGBA", (4, 4)).save(extra)
    with pytest.raises(DataError) as err:
        CityscapesPairs(tmp_path, "train")
    msg = str(err.value)
    assert f"{stems[0]}_leftImg8bit.png" in msg and "bochum_000777_000019_gtFine_color.png" in msg
    assert CityscapesPairs(tmp_path, "train", mode="onehot").layout == "official"  # labelIds are all there


def test_wrong_label_file_for_the_mode(tmp_path):
    stems = _official(tmp_path, per_city=1)
    color = tmp_path / "gtFine" / "train" / "aachen" / f"{stems[0]}_gtFine_color.png"
    Image.fromarray(np.zeros((16, 32), np.uint8), "L").save(color)  # a single-channel "colour" label
    with pytest.raises(DataError, match="3 or 4 channels"):
        CityscapesPairs(tmp_path, "train", mode="color", size=8)[0]


def test_photo_and_label_of_different_sizes(tmp_path):
    stems = _official(tmp_path, per_city=1)
    Image.new("RGBA", (30, 16)).save(tmp_path / "gtFine" / "train" / "aachen" / f"{stems[0]}_gtFine_color.png")
    with pytest.raises(DataError, match="differ in size"):
        CityscapesPairs(tmp_path, "train", size=8)[0]
    _pix2pix(tmp_path, "val", n=1)
    Image.new("RGB", (20, 16)).save(tmp_path / "cityscapes" / "val" / "1.jpg")
    with pytest.raises(DataError, match="two 16×16 halves"):
        CityscapesPairs(tmp_path / "cityscapes", "val", layout="pix2pix")[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_file_raises_data_error_naming_it(tmp_path, damage):
    """As CelebA's loader does: not a bare PIL OSError from deep inside the data loader."""
    stems = _official(tmp_path, per_city=1)
    for path in (tmp_path / "leftImg8bit" / "train" / "aachen" / f"{stems[0]}_leftImg8bit.png",
                 tmp_path / "gtFine" / "train" / "bochum" / f"{stems[1]}_gtFine_labelIds.png"):
        good = path.read_bytes()
        path.write_bytes(b"not an image" if damage == "garbage" else good[: len(good) // 2])
        mode = "color" if "leftImg8bit" in path.name else "onehot"
        with pytest.raises(DataError, match=rf"cannot decode image .*{path.name}"):
            ds = CityscapesPairs(tmp_path, "train", mode=mode, size=8)
            ds[[p[0].name for p in ds.items].index(path.name) if mode == "color" else 1]
    _pix2pix(tmp_path / "p2p", "val", n=1)
    jpg = tmp_path / "p2p" / "cityscapes" / "val" / "1.jpg"
    jpg.write_bytes(jpg.read_bytes()[:40])
    with pytest.raises(DataError, match=r"cannot decode image .*1\.jpg"):
        CityscapesPairs(tmp_path / "p2p", "val", layout="pix2pix")[0]


def test_pix2pix_layout_both_modes(tmp_path):
    _pix2pix(tmp_path, "train")
    _pix2pix(tmp_path, "val", n=2)
    ds = CityscapesPairs(tmp_path, "train", size=16)
    assert ds.layout == "pix2pix" and [p.name for p in ds.items] == ["1.jpg", "2.jpg", "3.jpg"]
    x, c = ds[2]
    assert abs(int(x.float().mean()) - 80) <= 2  # the photo is the left half
    assert CityscapesPairs(tmp_path, "test", size=16).layout == "pix2pix"  # val/ serves 'test' too
    oh = CityscapesPairs(tmp_path, "val", mode="onehot", size=16)[0][1].argmax(0)
    assert oh[0, 0] == SKY and oh[-1, -1] == ROAD  # JPEG colours → nearest palette colour → ID


def test_colour_to_id_prefers_the_smallest_shared_id():
    rgb = np.array([[[0, 0, 0], [3, 2, 1], [0, 0, 140]]], np.uint8)
    assert colors_to_ids(rgb).tolist() == [[0, 0, CAR]]


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        CityscapesPairs(tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="leftImg8bit"):
        CityscapesPairs(tmp_path)
    _official(tmp_path)
    with pytest.raises(DataError, match="placeholders"):
        CityscapesPairs(tmp_path, "test")
    with pytest.raises(DataError, match="mode"):
        CityscapesPairs(tmp_path, mode="labelIds")


def test_standin_pairs_are_a_deterministic_segmentation():
    tr, te = load_standin("train", n=20), load_standin("test", n=6)
    assert tr.x.shape == (20, 3, 32, 32) and tr.cond.shape == (20, 3, 32, 32) and len(te) == 6
    assert "stand-in" in tr.note and tr.name == "standin_label2photo"
    colours = {tuple(v) for v in tr.cond.permute(0, 2, 3, 1).reshape(-1, 3).tolist()}
    assert colours <= set(CLASS_COLORS) and len(colours) >= 3
    again = load_standin("train", n=20)
    assert torch.equal(again.x, tr.x) and torch.equal(again.cond, tr.cond)
    oh = load_standin("test", n=6, mode="onehot").cond
    assert oh.shape == (6, N_CLASSES, 32, 32) and (oh.sum(1) == 255).all()
    x, c = stack_pairs(tr, 4)
    assert torch.equal(x, tr.x[:4]) and torch.equal(c, tr.cond[:4])
