"""The contractive table: its cells are valid configs (paper cells are the reference configurations), a
diverged or non-invertible model becomes a recorded result instead of a crashed table, and the AWGN and
estimator-spread metrics do what their protocol says."""
import math

import torch

from attnflow_core.models import build_model
from attnflow_core.models.resflow import ResFlowModel, reference_config
from attnflow_core.repro import TABLES
from attnflow_core.repro.contractive_evaluators import GuardedReconstruction, GuardedSampleGrid
from attnflow_core.repro.spec import CellData


def test_cells_cover_the_table_rows_and_paper_cells_are_the_reference_configurations():
    t = TABLES["table_contractive"]
    smoke, paper = t.cells("smoke"), t.cells("paper")
    assert len(smoke) == len(paper) == 12
    assert {c["label"] for c in smoke} == {c["label"] for c in paper}
    assert {c["paper_bpd"] for c in paper} == {None, 0.97, 1.05, 3.28, 3.45, 3.65, 3.39}
    for c in smoke:
        build_model(c["model"])  # a valid, small config
    by_label = {c["label"]: c for c in paper}
    rf = by_label["Residual Flow [cifar10]"]
    assert rf["model"] == {**reference_config("resflow_cifar10").to_dict(), "family": "resflow"}
    assert rf["train"]["optimizer"] == "adam" and rf["train"]["betas"] == (0.9, 0.99) and rf["train"]["batch_size"] == 64
    idp = by_label["iResNet-iDP (published) [cifar10]"]
    with torch.device("meta"):
        assert ResFlowModel(idp["model"]).num_parameters() == 25_028_544 + 390
    assert idp["train"]["optimizer"] == "adamax" and idp["train"]["lr"] == 3e-3


def test_a_diverged_cell_is_a_row_not_a_crash():
    t = TABLES["table_contractive"]
    spec = t.cells("smoke")[8]
    rec = {"key": "k", "label": spec["label"], "profile": "smoke", "params": 1, "steps": None, "train_seconds": math.nan,
           "hardware": "cpu", "code_hash": "h", "commit": "c", "history": [], "diverged": "non-finite loss at step 7"}
    row = t.row(spec, rec)
    assert math.isnan(row["bpd"]) and "non-finite loss" in row["note"] and "no Lipschitz certificate" in row["note"]


def test_guarded_evaluators_record_non_convergence(tmp_path):
    from attnflow_core.repro.spec import CellContext

    torch.manual_seed(0)
    m = build_model(dict(family="resflow", arch="iresnet", image_shape=(3, 4, 4), scales=(1, 1), hidden=8,
                         logit_alpha=None, coeff=0.9, activation="elu", fc_blocks=0, attention="idp",
                         attention_variant="published", inverse_max_iter=3)).eval()
    with torch.no_grad():
        for p in m.levels[0].layers[-1].g.parameters():
            p.mul_(30.0)  # an attention far from contractive
    data = CellData(train=None, test=torch.randint(0, 256, (4, 3, 4, 4), dtype=torch.uint8))
    ctx = CellContext(TABLES["table_contractive"], {"label": "x"}, "key", "smoke", tmp_path)
    rec = GuardedReconstruction(n=4)(m, data, ctx)
    assert math.isnan(rec["reconstruction_max_abs_err"]) and "ConvergenceError" in rec["reconstruction_note"]
    smp = GuardedSampleGrid((0.7,))(m, data, ctx)
    assert "samples" not in smp and "scale 1 attention" in smp["samples_note"]


def test_awgn_protocol_and_estimator_spread():
    from attnflow_core.metrics.robustness import awgn_images, bits_per_dim_under_awgn, estimator_spread

    x = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8)
    assert torch.equal(awgn_images(x, 0.0), x)
    a, b = awgn_images(x, 10.0, seed=3), awgn_images(x, 10.0, seed=3)
    assert torch.equal(a, b) and a.dtype == torch.uint8 and not torch.equal(a, x)
    noise = a.float() - x.float()
    assert 3.0 < float(noise[(x > 40) & (x < 215)].std()) < 20.0  # σ = 10 pixel units, away from the clip
    tiny = dict(family="resflow", image_shape=(1, 4, 4), scales=(1, 1), hidden=8, fc_blocks=0)
    torch.manual_seed(0)
    m = build_model({**tiny, "logdet": dict(n_exact_eval=2)}).eval()
    res = bits_per_dim_under_awgn(m, x, (0.0, 20.0))
    assert res["delta_bpd"][0] == 0.0 and len(res["bpd"]) == 2
    assert estimator_spread(m, x, repeats=3)["per_image_std"] > 0
    exact = build_model({**tiny, "logdet": dict(method="exact")}).eval()
    exact.load_state_dict(m.state_dict())
    assert estimator_spread(exact, x, repeats=3)["per_image_std"] < 1e-5


# the smoke cells' keys at 6ae45ac, before the cpu profile was added
SMOKE_KEYS = [
    "contractive-iresnet-none-corrected-mnist-4c58e6bd", "contractive-resflow-none-corrected-mnist-69112cd6",
    "contractive-resflow-acf_l2-corrected-mnist-0d09588a", "contractive-resflow-acf_dot-corrected-mnist-f164f3ec",
    "contractive-iresnet-none-corrected-cifar10-c3a30237", "contractive-resflow-none-corrected-cifar10-ad247283",
    "contractive-resflow-acf_l2-corrected-cifar10-c2ef48e6", "contractive-resflow-acf_dot-corrected-cifar10-e2cda389",
    "contractive-iresnet-idp-published-cifar10-37fb5494", "contractive-iresnet-idp-corrected-cifar10-545273a9",
    "contractive-iresnet-icon-published-cifar10-0ef61e3a", "contractive-iresnet-icon-corrected-cifar10-19dfe86a",
]


def test_smoke_cells_keep_their_keys():
    from attnflow_core.repro.spec import cell_key

    assert [cell_key(c) for c in TABLES["table_contractive"].cells("smoke")] == SMOKE_KEYS


def test_cpu_cells_are_two_methods_on_one_backbone_three_seeds_with_the_protocol():
    t = TABLES["table_contractive"]
    assert "cpu" in t.profiles
    cpu = t.cells("cpu")
    assert len(cpu) == 6 and [c["method"] for c in cpu] == ["Residual Flow"] * 3 + ["Residual Flow + ACF (dot)"] * 3
    assert sorted(c["train"]["seed"] for c in cpu) == [0, 0, 1, 1, 2, 2]
    for c in cpu:
        assert (c["dataset"], c["convention"], c["data"]["dataset"], c["data"]["val_size"]) == ("mnist", "standard", "mnist", 5000)
        tr = c["train"]
        assert (tr["eval_every"], tr["ema_decay"], tr["spike_factor"], tr["optimizer"], tr["betas"]) == (
            500, 0.999, 1.5, "adam", (0.9, 0.99))
        assert c["model"]["image_shape"] == [1, 28, 28] and c["model"]["logit_alpha"] == 1e-6
        assert "scaled down" in c["note"]
    rf, acf = cpu[0]["model"], cpu[3]["model"]
    differ = {k for k in rf if rf[k] != acf[k]}
    assert differ == {"attention", "attention_window"} and acf["attention_window"] == 7  # the same backbone
    assert tr["steps"] % tr["eval_every"] == 0 and 1000 % tr["eval_every"] == 0  # val_at_1000 is a validation


def _fake_mnist(monkeypatch):
    import numpy as np

    from attnflow_core.data import registry

    real = registry._entry

    def loader(root, split, download):
        n = 5100 if split == "train" else 10
        x = np.random.default_rng(0 if split == "train" else 1).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)
        x[:, 0, 0, 0] = np.arange(n) % 256  # tells the images apart
        return x, np.zeros(n, np.int64)

    monkeypatch.setattr(registry, "_entry", lambda name: registry.DatasetEntry(name, loader, (1, 28, 28))
                        if name == "mnist" else real(name))


def test_cpu_data_holds_out_the_validation_split_and_validates_on_its_first_val_n(monkeypatch):
    from attnflow_core.metrics.likelihood import evaluate_bpd

    _fake_mnist(monkeypatch)
    t = TABLES["table_contractive"]
    spec = t.cells("cpu")[0]
    data = t.load_data(spec, "cpu", None)
    assert (data.n_train, len(data.val), len(data.test)) == (100, 5000, 10)
    train = data.train.batch(0, 100, 0)  # disjoint from the validation split
    assert not set(map(bytes, train.flatten(1).numpy())) & set(map(bytes, data.val.flatten(1).numpy()))
    spec = {**spec, "data": {**spec["data"], "val_n": 3}}
    torch.manual_seed(0)
    m = build_model(dict(family="resflow", image_shape=(1, 28, 28), scales=(1,), hidden=4, fc_blocks=0,
                         logit_alpha=1e-6, logdet=dict(n_exact_eval=2))).eval()
    assert t.validation(spec, data)(m) == evaluate_bpd(m, data.val[:3])["bpd"]


def test_cpu_row_has_the_protocol_columns_and_the_convergence_metric():
    t = TABLES["table_contractive"]
    spec = t.cells("cpu")[4]
    rec = {"key": "k", "label": spec["label"], "profile": "cpu", "params": 1, "steps": 3000, "train_seconds": 1.0,
           "hardware": "cpu", "code_hash": "h", "commit": "c", "history": [], "test_bpd": 1.2, "weights": "best-ema",
           "val_bpd": 1.1, "best_step": 3000, "n_spikes": 1,
           "val_curve": [{"step": 500, "val_bpd": 1.5}, {"step": 1000, "val_bpd": 1.3}, {"step": 3000, "val_bpd": 1.1}]}
    row = t.row(spec, rec)
    assert (row["seed"], row["val_at_1000"], row["val_bpd"], row["best_step"], row["weights"], row["n_spikes"]) == (
        1, 1.3, 1.1, 3000, "best-ema", 1)
    dead = {k: rec[k] for k in ("key", "label", "profile", "params", "hardware", "code_hash", "commit", "history")}
    row = t.row(spec, {**dead, "steps": None, "train_seconds": math.nan, "diverged": "loss spike 6"})
    assert math.isnan(row["bpd"]) and math.isnan(row["val_at_1000"]) and row["diverged"] == "loss spike 6"
    assert "val_at_1000" not in t.row(t.cells("smoke")[1], {**rec, "profile": "smoke"})


def test_validated_ema_weights_keep_the_lipschitz_certificate():
    """The EMA averages the raw weights and copies u, v, δ: they need not certify the average; loading the
    EMA state must re-certify (refresh) those layers, so every normalised layer stays within its coeff."""
    from attnflow_core.nn.lipschitz import spectral_layers
    from attnflow_core.training.objectives import BitsPerDim
    from attnflow_core.training.stability import EMA

    cfg = dict(family="resflow", image_shape=(1, 8, 8), scales=(1, 1), hidden=16, fc_blocks=1, fc_hidden=16,
               logit_alpha=1e-6, attention="acf_dot", logdet=dict(n_exact_eval=2))
    torch.manual_seed(0)
    m, ema = build_model(cfg), EMA(0.999)
    opt = torch.optim.Adam(m.parameters(), 3e-2)
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    for i in range(12):
        loss = BitsPerDim()(m, x[(i % 4) * 16:(i % 4 + 1) * 16])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for h in m.training_hooks(0):
            h(i + 1, m, opt)
        ema.update(m)
    ev = build_model(cfg)
    ev.load_state_dict(ema.state)
    for layer in spectral_layers(ev):
        with torch.no_grad():
            assert layer.certified_norm(layer.normalized_weight()) <= layer.coeff * (1 + 1e-5)
    assert max(ev.lipschitz_certificates().values()) < 1.0
