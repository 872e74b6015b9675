"""Table 4's spec: the paper profile is the paper's rows and SRFlow's schedule, the smoke profile is the labelled
stand-in, and the evaluator writes every column and the example file."""
import numpy as np
import pandas as pd
import torch

from attnflow_core import build_model
from attnflow_core.models.srflow import SRFlowConfig
from attnflow_core.repro import TABLES, CellContext, CellData
from attnflow_core.repro.tables import table4_celeba_sr
from attnflow_core.repro.tables.table4_celeba_sr import SuperResolutionEval, paper_model_config


def test_paper_profile_is_the_papers_rows_and_srflows_schedule():
    cells = TABLES["table4_celeba_sr"].cells("paper")
    assert [(c["method"], *c["paper_setting"]) for c in cells] == [
        ("SRFlow", 1, 1), ("SRFlow", 2, 8), ("cAttnFlow-iMap", 1, 1), ("cAttnFlow-iTrans", 1, 1),
        ("cAttnFlow-iMap", 2, 8), ("cAttnFlow-iTrans", 2, 8)]
    for c in cells:
        m = SRFlowConfig.from_dict({k: v for k, v in c["model"].items() if k != "family"})
        m.validate()
        assert (m.levels, m.steps, m.nf, m.nb, m.gc, m.hidden) == (*c["paper_setting"], 64, 8, 32, 64)
        assert m.image_shape == (3, 160, 160) and not m.correct_splits and m.freeze_encoder_fraction == 0
        t = c["train"]
        assert (t["batch_size"], t["lr"], t["optimizer"], tuple(t["betas"]), t["steps"]) == (16, 5e-4, "adam",
                                                                                              (0.9, 0.99), 200_000)
        assert tuple(t["milestones"]) == (0.5, 0.75, 0.9, 0.95) and t["gamma"] == 0.5
        assert c["dataset"] == "celeba" and c["data"]["n_test"] == 5000
        assert c["evaluators"]["temperatures"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        # the configs whose counts tests/models/test_srflow.py pins against the reference
        assert m == paper_model_config(c["model"]["attention"], *c["paper_setting"])


def test_smoke_profile_is_the_labelled_stand_in_scaled_down():
    spec = TABLES["table4_celeba_sr"]
    cells = spec.cells("smoke")
    assert len(cells) == 6 and {c["dataset"] for c in cells} == {"sr_standin"}
    assert [c["model"]["steps"] for c in cells] == [1, 2, 1, 1, 2, 2]
    assert "not CelebA" in spec.smoke_note and "stand-in" in spec.smoke_note
    assert len({c["label"] for c in cells}) == 6


class _NoLPIPS:
    """A unit test never downloads LPIPS's backbone: stand in an unavailable metric."""

    available, reason = False, "not loaded in unit tests"

    def __init__(self, **kw):
        pass


def test_evaluator_writes_every_column(tmp_path, monkeypatch, device):
    monkeypatch.setattr(table4_celeba_sr, "LPIPS", _NoLPIPS)
    torch.manual_seed(0)
    model = build_model({"family": "srflow", "image_shape": (3, 16, 16), "levels": 1, "steps": 1, "hidden": 8,
                         "nf": 4, "nb": 1, "gc": 4}).to(device)
    hr = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    from attnflow_core.data.superres import make_lr

    data = CellData(train=None, test=hr, test_cond=make_lr(hr), extra={"data_note": "fabricated"})
    spec = {"label": "tiny", "paper_setting": [1, 1], "model": {"attention": "none"}}
    ctx = CellContext(TABLES["table4_celeba_sr"], spec, "tiny-key", "smoke", tmp_path)
    rec = SuperResolutionEval((0.1, 0.5, 0.9), batch_size=2, keep=2)(model, data, ctx)
    assert {"psnr", "ssim", "lr_psnr", "lpips", "sr_by_temperature", "bicubic", "test_bpd", "n_test",
            "reconstruction_max_abs_err", "sr_examples", "lpips_note"} <= set(rec)
    assert rec["n_test"] == 3 and len(rec["sr_by_temperature"]) == 3 and np.isfinite(rec["test_bpd"])
    assert rec["lpips"] is None and "not loaded in unit tests" in rec["lpips_note"]
    ex = np.load(tmp_path / rec["sr_examples"])
    assert ex["sr"].shape == (3, 2, 3, 16, 16) and list(ex["temperatures"]) == [0.1, 0.5, 0.9]
    assert ex["lr"].shape == (2, 3, 2, 2)

    from attnflow_core.repro.sr_plots import plot_metrics_vs_temperature, plot_sr_examples

    frame = pd.DataFrame([{"label": "tiny", "temperature": r["temperature"], "metric": m, "value": r[m]}
                          for r in rec["sr_by_temperature"] for m in ("psnr", "ssim", "lr_psnr")])
    plot_metrics_vs_temperature(frame, rec["bicubic"], "t", tmp_path / "m.png", lpips_note="n/a here")
    plot_sr_examples([("tiny", tmp_path / rec["sr_examples"])], "t", tmp_path / "s.png")
    assert (tmp_path / "m.png").stat().st_size > 1000 and (tmp_path / "s.png").stat().st_size > 1000
