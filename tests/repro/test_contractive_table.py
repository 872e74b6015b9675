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
