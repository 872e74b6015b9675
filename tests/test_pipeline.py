"""Data, trainer (resume, guards), evaluation and the driver's failure handling."""
import json
from pathlib import Path

import nbformat
import pytest
import torch

from attnflow_core import FlowModel, NonFiniteError
from attnflow_core.data import DataNotFoundError, dataset_shape, load_dataset
from attnflow_core.train import TrainConfig, batch_indices, evaluate_bpd, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1, hidden=8, attention="imap")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def test_digits_split_is_deterministic_and_disjoint(digits):
    tr, te = digits
    assert tr.images.dtype == torch.uint8 and tr.shape == (1, 8, 8)
    assert len(tr) + len(te) == 1797
    tr2 = load_dataset("digits", "train")
    assert torch.equal(tr.images, tr2.images)
    flat_te = {bytes(x.numpy()) for x in te.images}
    # the split is by index, so no test image object is in train unless digits has duplicates
    assert len(tr) > 1000 and len(te) > 300 and len(flat_te) > 300


def test_padded_convention_shapes(digits):
    assert dataset_shape("mnist", "padded") == (3, 32, 32)
    assert dataset_shape("mnist", "standard") == (1, 28, 28)
    d = load_dataset("digits", "test", convention="padded", limit=5)
    assert d.images.shape == (5, 3, 8, 8) and torch.equal(d.images[:, 0], d.images[:, 2])


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="no shared MNIST copy")
def test_mnist_both_conventions_from_data_root():
    std = load_dataset("mnist", "test", root=SHARED, limit=10)
    pad = load_dataset("mnist", "test", root=SHARED, convention="padded", limit=10)
    assert std.images.shape == (10, 1, 28, 28) and pad.images.shape == (10, 3, 32, 32)
    assert torch.equal(pad.images[:, 1, 2:30, 2:30], std.images[:, 0])
    assert pad.images[:, :, :2].sum() == 0


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="cifar10_train.npz"):
        load_dataset("cifar10", root=tmp_path)


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(100, 10, s, seed=3) for s in range(10)])
    assert sorted(seen.tolist()) == list(range(100))
    assert torch.equal(batch_indices(100, 10, 4, 3), batch_indices(100, 10, 4, 3))
    assert not torch.equal(batch_indices(100, 10, 10, 3), batch_indices(100, 10, 0, 3))  # new epoch, new order


def test_interrupted_run_resumes_to_the_same_result(tmp_path, digits):
    tr, _ = digits
    cfg = TrainConfig(steps=8, batch_size=16, checkpoint_every=3, warmup_steps=2, seed=7)
    full = train(TINY, cfg, tr.images, tmp_path / "a", progress=False)

    class Killed(Exception):
        pass

    def kill_at_5(step, loss):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train(TINY, cfg, tr.images, tmp_path / "b", progress=False, on_step=kill_at_5)
    resumed = train(TINY, cfg, tr.images, tmp_path / "b", progress=False)
    assert resumed.resumed_from == 3  # the last checkpoint before the kill
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_bpd"] for h in full.history] == [h["train_bpd"] for h in resumed.history]


def test_checkpoint_of_another_config_is_refused(tmp_path, digits):
    tr, _ = digits
    train(TINY, TrainConfig(steps=1, batch_size=8), tr.images, tmp_path, progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        train({**TINY, "hidden": 4}, TrainConfig(steps=1, batch_size=8), tr.images, tmp_path, progress=False)


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, digits, monkeypatch):
    tr, _ = digits
    orig = FlowModel.bits_per_dim
    calls = {"n": 0}

    def poisoned(self, x, cond=None, noise=True):
        calls["n"] += 1
        out = orig(self, x, cond, noise)
        return out * float("nan") if calls["n"] > 4 else out

    monkeypatch.setattr(FlowModel, "bits_per_dim", poisoned)
    with pytest.raises(NonFiniteError, match=r"training step 5.*after 4 steps\) is intact"):
        train(TINY, TrainConfig(steps=10, batch_size=8, checkpoint_every=2), tr.images, tmp_path, progress=False)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 4


def test_evaluation_covers_the_whole_split(digits):
    _, te = digits
    torch.manual_seed(0)
    m = FlowModel(TINY)
    m.train()
    m.log_prob(m.dequantize(te.images[:64]))
    ev = evaluate_bpd(m, te.images, batch_size=100)
    assert ev["n"] == len(te) and len(te) % 100 != 0
    assert ev == evaluate_bpd(m, te.images, batch_size=100)  # seeded dequantisation


def test_train_rejects_wrong_images(digits):
    tr, _ = digits
    with pytest.raises(ValueError, match="uint8"):
        train(TINY, TrainConfig(steps=1), tr.images.float(), "/tmp/unused", progress=False)
    with pytest.raises(ValueError, match="model config says"):
        train({**TINY, "image_shape": (3, 8, 8)}, TrainConfig(steps=1), tr.images, "/tmp/unused", progress=False)


def test_failed_notebook_leaves_results_and_exits_nonzero(tmp_path, monkeypatch):
    from attnflow_core import reproduce

    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'smoke'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('deliberate failure')")]
    nbformat.write(nb, nbdir / "jacobian_walkthrough.ipynb")
    monkeypatch.setattr(reproduce, "notebook_dir", lambda: nbdir)
    res = tmp_path / "results"
    earlier = res / "smoke" / "executed" / "jacobian_walkthrough.ipynb"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier result")
    (res / "smoke" / "fig2_masks.png").write_bytes(b"earlier figure")
    code = reproduce.main(["--profile", "smoke", "--only", "jacobian_walkthrough", "--results-root", str(res)])
    assert code == 1
    assert earlier.read_text() == "earlier result"
    assert (res / "smoke" / "fig2_masks.png").read_bytes() == b"earlier figure"
    assert (earlier.parent / "jacobian_walkthrough.failed.ipynb").exists()
    info = json.loads((res / "smoke" / "run_info.json").read_text())
    assert info["failures"] and "deliberate failure" in info["failures"][0][1]


def test_paper_profile_specs_are_valid_configs():
    from attnflow_core import FlowConfig
    from attnflow_core.experiments import TABLES, cell_key, table_cells

    keys = set()
    for table in TABLES:
        for spec in table_cells(table, "paper"):
            cfg = FlowConfig.from_dict(spec["model"])
            cfg.validate()
            assert spec["train"]["batch_size"] == 32 and spec["train"]["lr"] == 8e-4  # the paper's
            assert spec["dataset"] == "mnist"
            keys.add(cell_key(spec))
    t2 = table_cells("table2_mnist", "paper")
    assert {s["convention"] for s in t2} == {"padded", "standard"}
    padded = [s for s in t2 if s["convention"] == "padded"]
    assert [tuple(s["paper_setting"]) for s in padded][1:] == [(3, 4, 96), (3, 4, 96), (3, 4, 96), (3, 2, 96),
                                                               (3, 2, 96), (3, 2, 48), (3, 2, 48)]
    for s in padded[1:]:  # the paper's (L, K, C) are trained unchanged at paper scale
        m = s["model"]
        assert (m["levels"], m["steps"], m["hidden"]) == tuple(s["paper_setting"])
        assert m["image_shape"] == [3, 32, 32] and m["coupling"] == "mixlogistic"


@pytest.mark.parametrize("temps", [(0.7,), (0.5, 1.0)])
def test_sample_grid_any_number_of_temperatures(tmp_path, temps):
    from attnflow_core.report import save_sample_grid

    m = FlowModel(TINY)
    m.eval()
    save_sample_grid(m, tmp_path / "g.png", temps, "t", n=4)
    assert (tmp_path / "g.png").stat().st_size > 1000
