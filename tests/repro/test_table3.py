"""Table 3 and supp. Table 1: the paper profile is the paper's settings, rows are model configs with a
family, the sample-quality evaluator works on any model with ``sample``/``to_uint8`` and says why IS is
missing, measured cells (timings, real data) are cached like trained ones, bad input fails clearly."""
import json

import numpy as np
import pytest
import torch

from attnflow_core import FlowModel
from attnflow_core.core import DataNotFoundError, FeatureNetworkError, MetricError
from attnflow_core.models import make_config
from attnflow_core.repro import TABLES, CellContext, CellData, collect, load_cell, run_cell
from attnflow_core.repro.sample_quality import SampleQuality, draw_samples


def test_paper_profile_is_the_papers_setting():
    cells = TABLES["table3_cifar10"].cells("paper")
    trained = [c for c in cells if c["family"] == "multiscale"]
    assert [(c["method"], c["model"]["hidden"]) for c in trained] == [
        ("mARFlow", 96), ("AttnFlow-iMap", 96), ("AttnFlow-iTrans", 96),
        ("mARFlow", 256), ("AttnFlow-iMap", 256), ("AttnFlow-iTrans", 256)]
    contractive = {c["method"]: c for c in cells if c["family"] == "resflow"}
    assert sorted(contractive) == ["Residual Flow", "iResNet-iCon", "iResNet-iDP"]
    rf, idp = contractive["Residual Flow"], contractive["iResNet-iDP"]
    # the reference configurations with their published optimisers (rtqichen/residual-flows)
    assert (rf["model"]["arch"], rf["model"]["scales"], rf["model"]["hidden"]) == ("resflow", [16, 16, 16], 512)
    assert (rf["train"]["optimizer"], rf["train"]["lr"], rf["train"]["batch_size"]) == ("adam", 1e-3, 64)
    assert (idp["model"]["arch"], idp["model"]["attention"], idp["train"]["optimizer"]) == ("iresnet", "idp", "adamax")
    assert idp["model"]["attention_variant"] == "corrected"
    for c in trained:
        m = c["model"]
        assert m["family"] == "multiscale" and (m["levels"], m["steps"]) == (3, 4) and m["coupling"] == "mixlogistic"
        assert make_config(m).image_shape == (3, 32, 32)
        assert (c["train"]["steps"], c["train"]["batch_size"]) == (90_000, 32)  # supplement §4
        assert c["data"] == {"limit_train": None, "limit_test": None}  # the whole test split for bits/dim
        q = c["evaluators"]["sample_quality"]
        assert q["n_samples"] == 10_000 and q["inception_size"] == 299 and q["ref_count"] is None
        assert 1.0 in q["temperatures"] and q["kid_subset_size"] == 1000
    real = [c for c in cells if c["family"] == "data"]
    assert len(real) == 1 and real[0]["data"]["limit"] == 10_000


def test_smoke_profile_is_small_and_labelled():
    t = TABLES["table3_cifar10"]
    for c in t.cells("smoke"):
        q = c["evaluators"]["sample_quality"]
        assert q["n_samples"] <= 2000 and q["kid_subset_size"] <= min(q["n_samples"], q["ref_count"])
    assert "not comparable" in t.smoke_note


def test_every_row_of_the_papers_table_is_shown_once():
    import pandas as pd

    t = TABLES["table3_cifar10"]
    df = t.assemble(pd.DataFrame([{"method": "AttnFlow-iMap", "setting": "L3 K4 C96", "source": "ours (smoke)",
                                   "kid": 0.5, "kid_std": 0.1, "kid_best": 0.4, "kid_std_best": 0.1, "is": None,
                                   "is_std": None}]), "smoke")
    assert len(df) == 12 and list(df["method"][:7]) == ["DCGAN", "Glow", "Flow++", "Residual Flow", "iResNet-iDP",
                                                         "iResNet-iCon", "mARFlow"]
    ours = df[df["source"] == "ours (smoke)"].iloc[0]
    assert ours["KID (T=1)"] == "0.5000 ± 0.1000" and ours["IS (T=1)"] == "n/a"
    assert (df["paper_fid"] == 37.1).sum() == 1 and not (df[t.columns()].astype(str) == "nan").any().any()


def _tiny_model(device="cpu"):
    torch.manual_seed(0)
    m = FlowModel(dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1, hidden=8)).to(device)
    m.train()
    m.log_prob((torch.rand(16, 1, 8, 8) - 0.5).to(device))  # ActNorm's initialisation
    return m.eval()


class _UniformClassifier(torch.nn.Module):
    """Stands in for the downloaded 1008-way classifier: uint8 images in, a tuple with all-zero logits
    out (uniform p(y|x), so IS = 1 exactly), the interface of torch-fidelity's extractor."""

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        return (torch.zeros(x.shape[0], 1008),)


def test_the_is_network_interface_offline():
    """torch-fidelity's classifier network (our pool3 weights, zero classifier) through inception_logits."""
    from attnflow_core.metrics import inception_logits
    from attnflow_core.metrics.crosscheck import torch_fidelity_network

    z = inception_logits(torch_fidelity_network(("logits_unbiased",)), torch.zeros(1, 1, 8, 8, dtype=torch.uint8),
                         progress=False)
    assert z.shape == (1, 1008) and np.all(z == 0)


def test_sample_quality_scores_a_temperature_sweep(tmp_path, monkeypatch, device):
    from attnflow_core.repro import sample_quality

    monkeypatch.setattr(sample_quality, "load_logits_network", _UniformClassifier)
    q = SampleQuality(n_samples=3, temperatures=(1.0, 0.5), inception_size=75, ref_count=6, kid_subset_size=2,
                      kid_subsets=3, is_splits=2, grid=4)
    out = tmp_path / "results" / "smoke"
    ctx = CellContext(TABLES["table2_mnist"], {"dataset": "digits", "label": "tiny"}, "tiny-key", "smoke", out)
    rec = q(_tiny_model(device), CellData(train=None, test=None), ctx)
    sweep = rec["sample_quality"]["sweep"]
    assert [s["temperature"] for s in sweep] == [1.0, 0.5]
    assert rec["fid"] == sweep[0]["fid"] and rec["fid_best"] == min(s["fid"] for s in sweep) > 0
    assert rec["best_temperature"] in (1.0, 0.5) and rec["kid_std"] >= 0
    assert rec["is"] == pytest.approx(1.0) and rec["is_std"] == pytest.approx(0.0) and rec["is_note"] == ""
    assert not rec["fid_standard_features"] and "75×75" in rec["fid_network"]
    assert (out / rec["sample_grid"]).is_file()
    assert list((tmp_path / "runs" / "inception_stats").glob("digits-train-n6-*.npz"))  # cached beside the runs
    json.dumps(rec)  # a cell record must be JSON


def test_is_is_na_with_the_reason_when_the_classifier_cannot_be_had(monkeypatch):
    from attnflow_core.repro import sample_quality

    def no_classifier():
        raise FeatureNetworkError("weights not cached and github.com unreachable (test)")

    monkeypatch.setattr(sample_quality, "load_logits_network", no_classifier)
    net, note = SampleQuality(n_samples=2000)._logits_net()
    assert net is None and note == "IS n/a: weights not cached and github.com unreachable (test)"


def test_samples_are_seeded_and_leave_the_rng_alone(device):
    m = _tiny_model(device)
    state = torch.get_rng_state()
    a = draw_samples(m, 5, 0.7, batch=2, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert a.dtype == torch.uint8 and a.shape == (5, 1, 8, 8) and torch.equal(a, draw_samples(m, 5, 0.7, batch=2, seed=3))
    assert not torch.equal(a, draw_samples(m, 5, 0.7, batch=2, seed=4))


def test_sample_quality_settings_are_checked_before_any_work():
    with pytest.raises(MetricError, match=r"KID needs at least subset_size=1000 features in each set, got 500"):
        SampleQuality(n_samples=500)
    with pytest.raises(MetricError, match="subset_size=100 .* got 200 and 50"):
        SampleQuality(n_samples=200, ref_count=50, kid_subset_size=100)
    with pytest.raises(MetricError, match="must include 1.0"):
        SampleQuality(n_samples=2000, temperatures=(0.7,))


def test_missing_cifar10_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise RuntimeError("no network (test)")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    t = TABLES["table3_cifar10"]
    with pytest.raises(DataNotFoundError, match=r"looked for .*cifar10_train.npz.*ATTNFLOW_DATA.*no network"):
        t.load_data(t.cells("smoke")[0], "smoke", str(tmp_path))


def test_measured_cells_are_cached_and_expand_to_rows(tmp_path, monkeypatch):
    t = TABLES["supp_table1_timings"]
    calls = []
    fake = [{"variant": n, "attention": a, "position": 4, "heads": 5, "params": 10, "batch": 8, "sample_batch": 8,
             "rounds": 3, "train_step_s": 0.1 * (i + 1), "train_step_ratio": 1.0 + i, "log_prob_s": 0.08,
             "log_prob_ratio": 1.0, "sample_batch_s": 0.8, "sample_batch_ratio": 1.0}
            for i, (n, a) in enumerate([("mARFlow", "none"), ("AttnFlow-iMap", "imap"), ("AttnFlow-iTrans", "itrans")])]
    monkeypatch.setattr(type(t), "measure", lambda self, spec, ctx, root: calls.append(1) or
                        {"timings": fake, "hardware": "test", "device": "cpu", "threads": 1})
    spec = t.cells("smoke")[0]
    rec = run_cell(spec, "smoke", tmp_path)
    cached = load_cell(spec, "smoke", tmp_path)
    assert cached["finished"] == rec["finished"] and cached["timings"] == fake and rec["code_hash"]
    df = collect(t, "smoke", tmp_path)  # reuses the record: no second measurement
    assert len(calls) == 1 and list(df["method"]) == ["mARFlow", "AttnFlow-iMap", "AttnFlow-iTrans"]
    assert list(df["paper_train_ratio"]) == [1.0, 1.2, 2.0] and list(df["paper_test_s_per_image"]) == [0.48, 0.5, 0.61]
    assert df["log_prob_ms_per_image"].iloc[0] == pytest.approx(10.0)  # 0.08 s per batch of 8


def test_timing_ratios_are_to_the_backbone():
    from attnflow_core.repro.timing import measure_timings, timing_args

    args = timing_args("smoke", "cpu", 1, [("base", "none", 4, 1), ("imap", "imap", 4, 1)], batch=2, sample_batch=2,
                       repeats=2, warmup=1, model=dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1,
                                                       hidden=8))
    rows = measure_timings(args)
    assert [r["variant"] for r in rows] == ["base", "imap"]
    assert rows[0]["train_step_ratio"] == 1.0 and rows[0]["log_prob_ratio"] == 1.0
    assert all(r[k] > 0 for r in rows for k in ("train_step_s", "log_prob_s", "sample_batch_s"))
    assert rows[1]["params"] > rows[0]["params"] and rows[1]["paper_train_ratio"] == pytest.approx(1.2)
    assert np.isfinite(rows[1]["train_step_ratio"])


# -- the cpu profile (issue 19) ---------------------------------------------------------------------------
# the keys of every smoke and paper cell at 6ae45ac: the cpu profile must leave them (and so their records) alone
KEYS_6AE45AC = {
    "smoke": ["resflow---none-resflow1-1h32-cifar10-a5983931", "resflow---idp-iresnet1-1-1h32-cifar10-da94918a",
              "resflow---icon-iresnet1-1-1h32-cifar10-6c818e47", "multiscale-marflow-affine-none-L3K1C16-cifar10-dad7854e",
              "multiscale-marflow-affine-imap-L3K1C16-cifar10-d726d2fb",
              "multiscale-marflow-affine-itrans-L3K1C16-cifar10-ab3d8539", "cifar10-test-real-images-0188d134"],
    "paper": ["resflow---none-resflow16-16-16h512-cifar10-22566d2b", "resflow---idp-iresnet16-16-16h512-cifar10-b96e35dc",
              "resflow---icon-iresnet16-16-16h512-cifar10-bb520264",
              "multiscale-marflow-mixlogistic-none-L3K4C96-cifar10-5178c8f9",
              "multiscale-marflow-mixlogistic-imap-L3K4C96-cifar10-6fb80094",
              "multiscale-marflow-mixlogistic-itrans-L3K4C96-cifar10-80225b2e",
              "multiscale-marflow-mixlogistic-none-L3K4C256-cifar10-cdc4a6c9",
              "multiscale-marflow-mixlogistic-imap-L3K4C256-cifar10-529142b2",
              "multiscale-marflow-mixlogistic-itrans-L3K4C256-cifar10-5a61670b", "cifar10-test-real-images-3cc339f8"],
}


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_smoke_and_paper_cells_keep_their_keys(profile):
    from attnflow_core.repro import cell_key

    assert [cell_key(c) for c in TABLES["table3_cifar10"].cells(profile)] == KEYS_6AE45AC[profile]


def test_cpu_profile_cells():
    t = TABLES["table3_cifar10"]
    assert "cpu" in t.profiles
    cells = t.cells("cpu")
    trained = [c for c in cells if "train" in c]
    assert [(c["method"], c["train"]["seed"]) for c in trained] == [
        (m, s) for m in ("mARFlow", "AttnFlow-iMap", "AttnFlow-iTrans") for s in (0, 1, 2)]
    for c in trained:
        m, tr, q = c["model"], c["train"], c["evaluators"]["sample_quality"]
        assert (m["backbone"], m["coupling"], m["levels"], m["steps"], m["hidden"]) == ("marflow", "mixlogistic", 3, 2, 32)
        assert (m["components"], m["blocks"], m["prior_hidden"], m["prior_layers"]) == (8, 1, 16, 2)
        assert make_config(m).image_shape == (3, 32, 32) and c["paper_setting"] == "L3 K4 C96"
        assert c["data"] == {"limit_train": None, "limit_test": None, "val_size": 5000}  # whole test split
        assert (tr["eval_every"], tr["ema_decay"], tr["spike_factor"], tr["batch_size"]) == (200, 0.999, 1.5, 32)
        assert q["n_samples"] >= 1000 and q["inception_size"] == 299 and q["ref_split"] == "test"
        assert q["temperatures"] == [1.0] and q["kid_subset_size"] <= min(q["n_samples"], q["ref_count"])
        assert max(q["fid_inf_sizes"]) == q["n_samples"] and len(q["fid_inf_sizes"]) >= 5
    (real,) = [c for c in cells if "train" not in c]
    assert real["data"] == {"split": "train", "limit": 1000}  # real images that are not the reference's
    assert real["evaluators"]["sample_quality"] == trained[0]["evaluators"]["sample_quality"]


def test_cpu_data_hold_out_the_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cifar10").mkdir()
    for split, n in (("train", 5012), ("test", 7)):
        np.savez(tmp_path / "cifar10" / f"cifar10_{split}.npz", x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 y=rng.integers(0, 10, n))
    t = TABLES["table3_cifar10"]
    data = t.load_data(t.cells("cpu")[0], "cpu", str(tmp_path))
    assert data.n_train == 12 and data.val.shape == (5000, 3, 32, 32) and data.test.shape == (7, 3, 32, 32)
    assert data.extra["data_root"] == str(tmp_path) and data.val.dtype == torch.uint8
    seen = {tuple(x.flatten().tolist()[:64]) for x in data.val}
    assert not any(tuple(x.flatten().tolist()[:64]) in seen for x in data.train.x)  # disjoint
    assert t.validation(t.cells("cpu")[0], data) is not None  # eval_every has a split to select on


def test_fid_infinity_is_the_intercept_in_one_over_n(monkeypatch):
    from attnflow_core.repro.tables import _cifar_quality as cq

    # FID_n exactly on a line a + k/n: the fit returns a and k
    monkeypatch.setattr(cq, "fid_to_statistics", lambda f, mu, sigma: 3.0 + 50.0 / len(f))
    out = cq.fid_infinity(np.zeros((100, 4)), None, None, (20, 50, 100))
    assert out["fid_inf"] == pytest.approx(3.0, abs=1e-9) and out["fid_inf_slope"] == pytest.approx(50.0)
    assert [p["n"] for p in out["fid_by_n"]] == [20, 50, 100]


def test_fid_infinity_removes_most_of_the_small_sample_bias():
    from attnflow_core.metrics.fid import fid_to_statistics
    from attnflow_core.repro.tables._cifar_quality import fid_infinity

    # samples of the reference Gaussian itself: the true FID is 0, FID_n is biased upward by ~ 1/n
    d = 8
    f = np.random.default_rng(1).standard_normal((2000, d))
    out = fid_infinity(f, np.zeros(d), np.eye(d), tuple(range(200, 2001, 200)))
    small = out["fid_by_n"][0]["fid"]
    assert small > 0.03 and abs(out["fid_inf"]) < 0.25 * small and out["fid_inf_slope"] > 0
    assert out["fid_by_n"][-1]["fid"] == pytest.approx(fid_to_statistics(f, np.zeros(d), np.eye(d)))  # n = N: all


def test_fid_inf_quality_scores_once_and_checks_its_sizes():
    from types import SimpleNamespace

    from attnflow_core.metrics.fid import fid_to_statistics
    from attnflow_core.repro.tables._cifar_quality import FidInfQuality, quality_evaluator

    feats = np.random.default_rng(2).standard_normal((12, 5))
    ref = SimpleNamespace(mu=np.zeros(5), sigma=np.eye(5), features=np.random.default_rng(3).standard_normal((12, 5)))
    calls = []

    def extractor(images):
        calls.append(len(images))
        return feats

    extractor.device = torch.device("cpu")
    q = FidInfQuality(n_samples=12, ref_count=12, kid_subset_size=6, kid_subsets=3, inception_score=False,
                      fid_inf_sizes=(6, 9, 12))
    out = q.score(torch.zeros(12, 3, 8, 8, dtype=torch.uint8), extractor, ref)
    assert calls == [12] and out["fid"] == pytest.approx(fid_to_statistics(feats, ref.mu, ref.sigma))
    assert np.isfinite(out["fid_inf"]) and out["kid_std"] >= 0 and len(out["fid_by_n"]) == 3
    assert isinstance(quality_evaluator(q.settings()), FidInfQuality) and quality_evaluator(q.settings()) == q
    assert type(quality_evaluator(SampleQuality(n_samples=12, ref_count=12, kid_subset_size=6).settings())) is SampleQuality
    with pytest.raises(MetricError, match=r"fid_inf_sizes \(6, 13\).*n_samples=12"):
        FidInfQuality(n_samples=12, ref_count=12, kid_subset_size=6, fid_inf_sizes=(6, 13))
    with pytest.raises(MetricError, match="at least two different"):
        FidInfQuality(n_samples=12, ref_count=12, kid_subset_size=6, fid_inf_sizes=(6, 6))


def test_cpu_rows_keep_every_seed_and_a_diverged_one_has_no_numbers():
    import pandas as pd

    t = TABLES["table3_cifar10"]
    cells = [c for c in t.cells("cpu") if c["method"] == "mARFlow"]
    diverged = {"key": "k", "profile": "cpu", "params_M": 1.1, "steps": None, "train_seconds": float("nan"),
                "diverged": "non-finite loss at step 7", "hardware": "cpu", "commit": "c", "code_hash": "h"}
    row = t.row(cells[1], diverged)
    assert row["seed"] == 1 and row["diverged"] == "non-finite loss at step 7" and np.isnan(row["bpd"])
    assert np.isnan(row["fid"]) and np.isnan(row["fid_inf"]) and row["samples"] is None
    ok = [{"method": "mARFlow", "setting": "L3 K4 C96", "source": "ours (cpu)", "seed": s, "bpd": 4.0 + s,
           "kid": 0.1, "kid_std": 0.01, "kid_best": 0.1, "kid_std_best": 0.01, "is": None, "is_std": None}
          for s in (0, 2)]
    df = t.assemble(pd.DataFrame([ok[0], row, ok[1]]), "cpu")
    ours = df[df["source"] == "ours (cpu)"]
    assert list(ours["seed"]) == [0, 1, 2] and len(df) == 12 + 2  # every seed on its own line
