"""Grids are notebook parameters: declared in the notebook, checked by name, coerced from text, and a
non-default grid writes into its own results root."""
import pytest

from attnflow_core.core.errors import ParameterError
from attnflow_core.repro import TABLES, cell_key, declared_parameters, table_run
from attnflow_core.repro.params import coerce, grid_defaults, resolve_grid, variant_root


def test_the_notebooks_declare_the_grids():
    assert grid_defaults("ablation_heads") == {"heads": [1, 3, 5, 7], "seeds": None, "steps": {"cpu": 1500}}
    assert grid_defaults("ablation_positions") == {"attentions": ["imap", "itrans"], "positions": [1, 2, 3, 4],
                                                   "seeds": None, "steps": {"cpu": 1500}}
    assert grid_defaults("ablation_masks")["masks"] == ["spatial", "channel", "random", "checkerboard"]
    for name in TABLES:
        if TABLES[name].has_cells:
            assert {"profile", "results_root", "data_root"} <= set(declared_parameters(name)), name
    heads = [s["model"]["heads"] for s in TABLES["ablation_heads"].cells("smoke")]
    assert heads == [1, 3, 5, 7]


@pytest.mark.parametrize("value, default, expected", [
    ("[2, 4]", [1, 3], [2, 4]), ("2,4", [1, 3], [2, 4]), ("2", [1, 3], [2]), (5, [1, 3], [5]),
    ("imap,itrans", ["a"], ["imap", "itrans"]), ("50", None, 50), ("None", None, None), (50, None, 50),
])
def test_text_values_are_read_as_the_declared_type(value, default, expected):
    assert coerce("x", value, default) == expected


def test_a_misspelt_parameter_is_an_error_with_a_hint():
    ns = {"profile": "smoke", "results_root": None, "data_root": None, "heads": [1, 3, 5, 7], "seeds": [0],
          "steps": None, "hedas": "[2, 4]", "In": [], "get_ipython": print, "_i1": "x"}
    with pytest.raises(ParameterError, match="'hedas' \\(did you mean 'heads'\\?\\)"):
        table_run("ablation_heads", ns)
    with pytest.raises(ParameterError, match="tabel"):
        table_run("table2_mnist", {"profile": "smoke", "tabel": "table3_cifar10"})
    with pytest.raises(ParameterError, match="empty"):
        resolve_grid("ablation_heads", {"heads": "[]"})


def test_the_declared_grid_uses_the_canonical_root_and_another_grid_its_own(tmp_path):
    ns = {"profile": "smoke", "results_root": str(tmp_path), "data_root": None, "heads": [1, 3, 5, 7],
          "seeds": None, "steps": {"cpu": 1500}}
    run = table_run("ablation_heads", ns)
    assert run.is_default and run.results_root == str(tmp_path)
    assert {cell_key(s) for s in run.cells()} == {cell_key(s) for s in TABLES["ablation_heads"].cells("smoke")}
    var = table_run("ablation_heads", {**ns, "heads": "[2, 4]", "steps": "50"})
    assert not var.is_default
    assert var.results_root == str(variant_root("ablation_heads", var.grid, tmp_path))
    assert var.results_root.startswith(str(tmp_path / "_variants" / "ablation_heads-heads=2_4-steps=50-"))
    cells = var.cells()
    assert [(s["model"]["heads"], s["train"]["steps"]) for s in cells] == [(2, 50), (4, 50)]
    # the same grid written out in full is the declared one again
    assert table_run("ablation_heads", {**ns, "heads": "1,3,5,7"}).is_default


def test_seeds_multiply_the_cells_and_keep_the_default_keys():
    t = TABLES["ablation_positions"]
    default = t.cells("smoke")
    two = t.cells("smoke", seeds=[0, 1], positions=[4])
    assert [s["train"]["seed"] for s in two] == [0, 1, 0, 1]
    assert len({cell_key(s) for s in two}) == 4 and all("seed=" in s["label"] for s in two)
    # seed 0 at pos-4 is the default grid's cell: the same key, so its record is shared
    assert cell_key(two[0]) in {cell_key(s) for s in default}
    # tables whose cells have their own seeds keep them by default (SRFlow's paper profile: 10)
    assert {s["train"]["seed"] for s in TABLES["table4_celeba_sr"].cells("paper")} == {10}


def test_the_cpu_profile_has_three_seeds_and_a_schedule_may_be_given_per_profile():
    t = TABLES["ablation_heads"]
    cpu = t.cells("cpu")
    assert len(cpu) == 3 * len(t.cells("smoke")) and {s["train"]["seed"] for s in cpu} == {0, 1, 2}
    # the same data order for every method: a seed's cells differ only in the model
    assert {s["train"]["seed"] for s in t.cells("cpu", seeds={"cpu": [4], "smoke": [9]})} == {4}
    assert {s["train"]["seed"] for s in t.cells("smoke", seeds={"cpu": [4]})} == {0}  # not named: its default
    assert {s["train"]["steps"] for s in t.cells("cpu", steps={"cpu": 1500})} == {1500}
    assert {s["train"]["steps"] for s in t.cells("smoke", steps={"cpu": 1500})} == {200}
    assert coerce("steps", "700", {"cpu": 1500}) == 700  # one value given for a per-profile default


def test_papermill_refuses_an_unknown_parameter(tmp_path):
    pm = pytest.importorskip("papermill")
    from attnflow_core.repro.paths import notebook_dir

    with pytest.raises(pm.PapermillExecutionError, match="did you mean 'heads'"):
        pm.execute_notebook(str(notebook_dir() / "ablation_heads.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"hedas": [2, 4], "results_root": str(tmp_path)}, progress_bar=False,
                            cwd=str(notebook_dir()))
    assert not (tmp_path / "smoke").exists()  # nothing ran
