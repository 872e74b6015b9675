"""Table 5's spec: the paper profile is the reference's setting, the smoke profile is a labelled stand-in."""
from attnflow_core.models.fullglow import FullGlowConfig
from attnflow_core.repro import TABLES
from attnflow_core.training import TrainConfig


def test_paper_profile_is_the_references_setting():
    cells = TABLES["table5_cityscapes"].cells("paper")
    assert [c["method"] for c in cells] == ["Full-Glow", "cAttnFlow-iMap", "cAttnFlow-iTrans"]
    for c in cells:
        m = FullGlowConfig.from_dict({k: v for k, v in c["model"].items() if k != "family"})
        m.validate()
        assert (m.levels, m.steps) == tuple(c["paper_setting"]) and m.image_shape == (3, 256, 256)
        assert (m.hidden, m.cond_hidden, m.left_weight) == (512, 128, 1e-4)
        t = TrainConfig(**c["train"])
        assert (t.batch_size, t.lr, t.optimizer, t.warmup_steps, t.grad_clip, t.decay_start) == (1, 1e-4, "adam", 0, 0.0, 0.5)
        assert c["dataset"] == "cityscapes" and c["data"]["mode"] == "color"
    assert [c["train"]["steps"] for c in cells] == [595_000, 200_000, 200_000]
    assert cells[2]["model"]["heads"] == 1


def test_smoke_profile_is_a_labelled_stand_in():
    t = TABLES["table5_cityscapes"]
    cells = t.cells("smoke")
    assert {c["dataset"] for c in cells} == {"standin_label2photo"}
    assert "stand-in" in t.smoke_note and "not Cityscapes" in t.smoke_note
    assert [e.name for e in t.evaluators(cells[0])] == ["bits_per_dim", "reconstruction", "translation_samples"]
    rows = t.paper_only_rows()
    assert [r["label"] for r in rows] == ["C-Glow v.1", "C-Glow v.2", "Dual-Glow"]
    assert all(r["cond_bpd"] == "n/a" and "paper-only" in r["note"] for r in rows)


def test_translation_figure_from_a_tiny_model(tmp_path, device):
    import numpy as np
    import torch

    from attnflow_core import build_model
    from attnflow_core.data.standin import load_standin
    from attnflow_core.repro import CellContext, CellData
    from attnflow_core.repro.tables.table5_cityscapes import TranslationSamples

    te = load_standin("test", size=12, n=6)
    torch.manual_seed(0)
    model = build_model({"family": "fullglow", "image_shape": (3, 12, 12), "levels": 1, "steps": 1, "hidden": 8,
                         "cond_hidden": 4}).to(device).eval()
    spec = {"label": "tiny", "table": "table5_cityscapes"}
    ctx = CellContext(TABLES["table5_cityscapes"], spec, "tiny-key", "smoke", tmp_path)
    rec = TranslationSamples(n=3)(model, CellData(None, te.x, te.cond), ctx)
    arr = np.load(tmp_path / rec["samples_npz"])
    assert arr["sample"].shape == arr["photo"].shape == arr["label"].shape == (3, 3, 12, 12)
    assert (tmp_path / rec["samples"]).stat().st_size > 1000
