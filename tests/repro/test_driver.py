"""The driver and the table specs: failures leave earlier results, paper specs are the paper's settings,
table specs own their cells and evaluators, old entry points still work."""
import json
import subprocess
import sys

import nbformat
import pytest

from attnflow_core import FlowModel

TINY = dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1, hidden=8, attention="imap")


def test_failed_notebook_leaves_results_and_exits_nonzero(tmp_path, monkeypatch):
    from attnflow_core.repro import driver

    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'smoke'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('deliberate failure')")]
    nbformat.write(nb, nbdir / "jacobian_walkthrough.ipynb")
    monkeypatch.setattr(driver, "notebook_dir", lambda: nbdir)
    res = tmp_path / "results"
    earlier = res / "smoke" / "executed" / "jacobian_walkthrough.ipynb"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier result")
    (res / "smoke" / "fig2_masks.png").write_bytes(b"earlier figure")
    code = driver.main(["--profile", "smoke", "--only", "jacobian_walkthrough", "--results-root", str(res)])
    assert code == 1
    assert earlier.read_text() == "earlier result"
    assert (res / "smoke" / "fig2_masks.png").read_bytes() == b"earlier figure"
    assert (earlier.parent / "jacobian_walkthrough.failed.ipynb").exists()
    # a partial run (--only) is logged beside the full runs; it never replaces run_info.json
    assert not (res / "smoke" / "run_info.json").exists()
    info = json.loads((res / "smoke" / "partial_runs.jsonl").read_text().splitlines()[-1])
    assert info["failures"] and "deliberate failure" in info["failures"][0][1]
    assert info["threads_per_cell"] == 1


@pytest.fixture
def dry_driver(monkeypatch):
    """The driver with cell training and notebooks replaced by recorders: (jobs, notebooks) it asked for."""
    from attnflow_core.repro import driver

    seen = {"jobs": [], "notebooks": []}

    def run_cells(jobs, n, threads, log):
        seen["jobs"] += jobs
        return [{"status": "done", "seconds": 0.0} for _ in jobs]

    monkeypatch.setattr(driver, "run_cells", run_cells)
    monkeypatch.setattr(driver, "_execute", lambda name, params, *a: seen["notebooks"].append((name, params)) or None)
    monkeypatch.setattr(driver, "write_index", lambda root: None)
    return driver, seen


def test_driver_resolves_relative_paths_before_the_notebooks_see_them(tmp_path, monkeypatch, dry_driver):
    # the kernels run in notebooks/: a relative --data-root / --results-root must reach them absolute
    driver, seen = dry_driver
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert driver.main(["--profile", "smoke", "--only", "ablation_heads", "--cell", "0", "--data-root", "data",
                        "--results-root", "res"]) == 0
    (job,) = seen["jobs"]
    (name, table), = seen["notebooks"]
    assert job["data_root"] == str(tmp_path / "data") and job["results_root"] == str(tmp_path / "res")
    assert table["results_root"] == str(tmp_path / "res") and table["data_root"] == str(tmp_path / "data")
    # --cell reruns its cell, resuming the checkpoint: only --force starts afresh
    assert job["rerun"] and not job["force"]


def test_a_rerun_shared_cell_rebuilds_every_table_that_uses_it(tmp_path, dry_driver, capsys):
    from attnflow_core.repro import TABLES, cell_key
    from attnflow_core.repro.provenance import code_hash

    driver, seen = dry_driver
    out = tmp_path / "smoke"
    (out / "cells").mkdir(parents=True)
    positions = [cell_key(s) for s in TABLES["ablation_positions"].cells("smoke")]
    (out / "ablation_positions.csv").write_text("built earlier\n")
    # iMap at pos-4 with the checkerboard mask is cell 3 of the mask ablation and a cell of the positions one;
    # while other cells of the positions table have no record, it is named, not rebuilt (that would train them)
    assert driver.main(["--only", "ablation_masks", "--cell", "3", "--results-root", str(tmp_path)]) == 0
    (job,) = seen["jobs"]
    assert cell_key(job["spec"]) in positions
    assert [n for n, _ in seen["notebooks"]] == ["ablation_masks"]
    assert "[ablation_positions] shares 1 rerun cell(s), but 7 of its other cells" in capsys.readouterr().out
    for k in positions:
        (out / "cells" / f"{k}.json").write_text(json.dumps({"code_hash": code_hash("ablation_positions")}))
    seen["jobs"].clear(), seen["notebooks"].clear()
    assert driver.main(["--only", "ablation_masks", "--cell", "3", "--results-root", str(tmp_path)]) == 0
    assert [n for n, _ in seen["notebooks"]] == ["ablation_positions", "ablation_masks"]
    info = json.loads((out / "partial_runs.jsonl").read_text().splitlines()[-1])
    assert info["rebuilt_shared"] == ["ablation_positions"]


def test_a_table_built_from_records_that_changed_since_is_stale(tmp_path):
    import pandas as pd

    from attnflow_core.repro import write_table
    from attnflow_core.repro.report import stale_tables

    out = tmp_path / "smoke"
    (out / "cells").mkdir(parents=True)
    (out / "cells" / "k1.json").write_text(json.dumps({"label": "one", "finished": "t1"}))
    df = pd.DataFrame([{"key": "k1", "bpd": 1.0}])
    write_table(df, "ablation_heads", "smoke", tmp_path)
    prov = json.loads((out / "ablation_heads.provenance.json").read_text())
    assert prov["cells"]["k1"]["finished"] == "t1" and "1 cell record" in (out / "ablation_heads.md").read_text()
    assert stale_tables("smoke", tmp_path) == {}
    (out / "cells" / "k1.json").write_text(json.dumps({"label": "one", "finished": "t2"}))  # rerun elsewhere
    assert stale_tables("smoke", tmp_path) == {"ablation_heads": ["one"]}


def test_set_runs_another_grid_into_its_own_root(tmp_path, dry_driver, capsys):
    driver, seen = dry_driver
    assert driver.main(["--only", "ablation_heads", "--set", "heads=2,4", "--set", "steps=50",
                        "--results-root", str(tmp_path)]) == 0
    roots = {j["results_root"] for j in seen["jobs"]}
    assert len(seen["jobs"]) == 2 and len(roots) == 1
    (root,) = roots
    assert root.startswith(str(tmp_path / "_variants" / "ablation_heads-"))
    assert [j["spec"]["model"]["heads"] for j in seen["jobs"]] == [2, 4]
    (name, params), = seen["notebooks"]  # the notebook gets the grid and resolves the same root itself
    assert params["heads"] == [2, 4] and params["steps"] == 50 and params["results_root"] == str(tmp_path)
    assert root in capsys.readouterr().out
    with pytest.raises(SystemExit):
        driver.main(["--only", "ablation_heads", "--set", "hedas=2", "--results-root", str(tmp_path)])
    assert "hedas" in capsys.readouterr().err


def test_ctrl_c_prints_the_resume_command(tmp_path, dry_driver, monkeypatch, capsys):
    from attnflow_core.repro.workers import Interrupt

    driver, seen = dry_driver

    def interrupted(jobs, *a):
        raise Interrupt()

    monkeypatch.setattr(driver, "run_cells", interrupted)
    args = ["--only", "ablation_heads", "--force", "--results-root", str(tmp_path)]
    assert driver.main(args) == 130
    out = capsys.readouterr().out
    assert "Resume with:\n  python -m attnflow_core.repro --only ablation_heads --results-root" in out
    assert not seen["notebooks"]


def test_a_failed_cell_skips_its_tables_and_names_the_cell(tmp_path, dry_driver, monkeypatch):
    driver, seen = dry_driver
    monkeypatch.setattr(driver, "run_cells", lambda jobs, *a: [{"status": "failed", "message": "boom"} for _ in jobs])
    assert driver.main(["--only", "ablation_masks", "--cell", "3", "--results-root", str(tmp_path)]) == 1
    assert not seen["notebooks"]
    info = json.loads((tmp_path / "smoke" / "partial_runs.jsonl").read_text().splitlines()[-1])
    assert ["ablation_masks cell attention=imap-position=4-mask=checkerboard", "boom"] in info["failures"]


def test_paper_cells_on_a_machine_without_a_gpu_need_device_cpu(tmp_path, dry_driver, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    driver, seen = dry_driver
    with pytest.raises(SystemExit):
        driver.main(["--profile", "paper", "--only", "ablation_heads", "--results-root", str(tmp_path)])
    assert "--device cpu" in capsys.readouterr().err and not seen["jobs"]
    assert driver.main(["--profile", "paper", "--only", "ablation_heads", "--device", "cpu",
                        "--results-root", str(tmp_path)]) == 0
    assert {j["device"] for j in seen["jobs"]} == {"cpu"}


def test_paper_profile_specs_are_valid_configs():
    from attnflow_core import FlowConfig
    from attnflow_core.repro import TABLES, cell_key

    keys = set()
    for name in ("table2_mnist", "ablation_positions", "ablation_heads", "ablation_masks"):
        for spec in TABLES[name].cells("paper"):
            cfg = FlowConfig.from_dict(spec["model"])
            cfg.validate()
            assert spec["train"]["batch_size"] == 32 and spec["train"]["lr"] == 8e-4  # the paper's
            assert spec["dataset"] == "mnist"
            keys.add(cell_key(spec))
    t2 = TABLES["table2_mnist"].cells("paper")
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
    from attnflow_core.repro.plots import save_sample_grid

    m = FlowModel(TINY)
    m.eval()
    save_sample_grid(m, tmp_path / "g.png", temps, "t", n=4)
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_every_table_has_a_notebook_and_a_description():
    from attnflow_core.repro import TABLES
    from attnflow_core.repro.paths import notebook_dir

    for name in TABLES:
        t = TABLES[name]
        assert (notebook_dir() / f"{name}.ipynb").is_file() and (notebook_dir() / f"{name}.py").is_file(), name
        assert len(t.description) > 20


def test_cells_shared_by_two_tables_share_one_result():
    from attnflow_core.repro import TABLES, cell_key

    pos = {cell_key(s) for s in TABLES["ablation_positions"].cells("smoke")}
    masks = {cell_key(s) for s in TABLES["ablation_masks"].cells("smoke")}
    assert len(pos & masks) == 1  # iMap at pos-4 with the checkerboard mask


def test_table_spec_supplies_the_evaluators():
    from attnflow_core.repro import TABLES

    spec = TABLES["table2_mnist"].cells("smoke")[0]
    names = [e.name for e in TABLES["table2_mnist"].evaluators(spec)]
    assert names == ["bits_per_dim", "reconstruction", "samples"]


def test_unknown_cell_and_table_are_named():
    from attnflow_core.core import AttnflowError, UnknownNameError
    from attnflow_core.repro import TABLES, get_table

    with pytest.raises(AttnflowError, match="there is no cell 99"):
        TABLES["ablation_heads"].find_cell("smoke", 99)
    with pytest.raises(UnknownNameError, match="table2_mnist"):
        get_table("table9")


def test_public_import_paths_and_the_command_line_entry_point():
    import attnflow_core
    from attnflow_core.attention import IMap, ITrans  # noqa: F401
    from attnflow_core.data import load_dataset  # noqa: F401
    from attnflow_core.training import TrainConfig, train  # noqa: F401

    assert callable(attnflow_core.build_model)
    out = subprocess.run([sys.executable, "-m", "attnflow_core.repro", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--profile" in out.stdout


def test_prune_keeps_current_cells_and_removes_stale_ones(tmp_path):
    from attnflow_core.repro import TABLES, cell_key
    from attnflow_core.repro.driver import prune_stale_cells

    out = tmp_path / "smoke"
    (out / "cells").mkdir(parents=True)
    (out / "samples").mkdir()
    current = cell_key(TABLES["ablation_heads"].cells("smoke")[0])
    for key in (current, "glow-old-config-deadbeef"):
        (out / "cells" / f"{key}.json").write_text("{}")
        (out / "samples" / f"{key}.png").write_bytes(b"png")
    assert prune_stale_cells(out, "smoke") == 1
    assert (out / "cells" / f"{current}.json").exists() and (out / "samples" / f"{current}.png").exists()
    assert not (out / "cells" / "glow-old-config-deadbeef.json").exists()
    assert not (out / "samples" / "glow-old-config-deadbeef.png").exists()


def test_a_variant_grid_reuses_the_cells_it_shares_with_the_declared_one(tmp_path, dry_driver):
    from attnflow_core.repro import TABLES, cell_key
    from attnflow_core.repro.provenance import code_hash

    driver, seen = dry_driver
    out = tmp_path / "smoke"
    (out / "cells").mkdir(parents=True)
    (out / "samples").mkdir()
    for s in TABLES["ablation_positions"].cells("smoke"):  # the canonical records and sample grids
        (out / "cells" / f"{cell_key(s)}.json").write_text(json.dumps({"code_hash": code_hash("ablation_positions"), "label": s["label"]}))
        (out / "samples" / f"{cell_key(s)}.png").write_bytes(b"png")
    assert driver.main(["--only", "ablation_positions", "--set", "positions=4", "--set", "seeds=0,1",
                        "--results-root", str(tmp_path)]) == 0
    assert sorted((j["spec"]["model"]["attention"], j["spec"]["train"]["seed"]) for j in seen["jobs"]) == \
        [("imap", 1), ("itrans", 1)]  # seed 0 at pos-4 is the declared grid's: copied, not trained
    (variant,) = (tmp_path / "_variants").iterdir()
    copied = {p.name for p in (variant / "smoke").rglob("*") if p.is_file()}
    assert len([n for n in copied if n.endswith(".json")]) == 2 and len([n for n in copied if n.endswith(".png")]) == 2


def test_a_walkthrough_with_other_parameters_writes_into_its_own_root(tmp_path, dry_driver):
    driver, seen = dry_driver
    assert driver.main(["--only", "jacobian_walkthrough", "--set", "seed=3", "--results-root", str(tmp_path)]) == 0
    (name, params), = seen["notebooks"]
    assert params["seed"] == 3 and params["results_root"].startswith(str(tmp_path / "_variants" / "jacobian_walkthrough-"))
    seen["notebooks"].clear()
    assert driver.main(["--only", "jacobian_walkthrough", "--results-root", str(tmp_path)]) == 0
    assert seen["notebooks"][0][1]["results_root"] == str(tmp_path)
