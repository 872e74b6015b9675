"""Beyond one machine: ``--shard i/N`` splits the cells once each whatever is done, ``--executor local`` trains
a real cell through submitit into the results root (the path Slurm jobs take), Slurm options reach submitit."""
import json

import pytest

from attnflow_core.core.errors import ParameterError
from attnflow_core.repro import cluster, driver
from attnflow_core.repro.cluster import parse_shard, slurm_options
from attnflow_core.repro.spec import TABLES, cell_key


@pytest.fixture
def dry(monkeypatch):
    """The driver with cell training and notebooks replaced by recorders."""
    seen = {"jobs": [], "notebooks": [], "submitted": []}

    def run_cells(jobs, n, threads, log):
        seen["jobs"].append([cell_key(j["spec"]) for j in jobs])
        return [{"status": "done", "seconds": 0.0} for _ in jobs]

    monkeypatch.setattr(driver, "run_cells", run_cells)
    monkeypatch.setattr(driver, "_execute", lambda name, params, *a: seen["notebooks"].append(name) or None)
    monkeypatch.setattr(driver, "write_index", lambda root: None)
    return seen


def test_shards_cover_every_cell_once_whatever_is_already_done(tmp_path, dry, monkeypatch):
    every = [cell_key(s) for s in TABLES["table2_mnist"].cells("smoke")]
    base = ["--only", "table2_mnist", "--results-root", str(tmp_path)]
    for i in range(3):
        assert driver.main([*base, "--shard", f"{i}/3"]) == 0
    shards = dry["jobs"]
    assert sorted(k for s in shards for k in s) == sorted(every)  # a partition: each cell in one shard
    assert shards[1] == every[1::3]
    assert dry["notebooks"] == []  # no table is built from one shard
    # with some cells finished, a shard keeps its own cells (the numbering is before the finished ones drop)
    done = {every[0], every[1]}
    monkeypatch.setattr(driver, "load_cell", lambda spec, *a, **k: {} if cell_key(spec) in done else None)
    driver.main([*base, "--shard", "1/3"])
    assert dry["jobs"][-1] == [k for k in every[1::3] if k not in done]


@pytest.mark.parametrize("bad", ["3/3", "1", "a/2", "-1/2", "0/0"])
def test_a_bad_shard_is_named(bad):
    with pytest.raises(ParameterError, match="--shard"):
        parse_shard(bad)


def test_slurm_options_from_the_command_line_or_the_environment(monkeypatch):
    monkeypatch.setenv("ATTNFLOW_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("ATTNFLOW_SLURM_TIME", "90")
    got = slurm_options({"partition": None, "gpus": "2", "time": None, "account": "proj1"})
    assert got == {"gpus_per_node": 2, "timeout_min": 90, "slurm_partition": "gpu", "slurm_account": "proj1"}
    assert slurm_options({"partition": "big"})["slurm_partition"] == "big"  # the option wins
    monkeypatch.setenv("ATTNFLOW_SLURM_GPUS", "two")
    with pytest.raises(ParameterError, match="ATTNFLOW_SLURM_GPUS"):
        slurm_options({})


def test_slurm_submits_one_array_job_per_missing_cell(tmp_path, dry, monkeypatch, capsys):
    submitit = pytest.importorskip("submitit")
    made = {}

    class FakeJob:
        job_id = "4242_0"

    class FakeExecutor:
        def __init__(self, folder, cluster):
            made.update(folder=folder, cluster=cluster)

        def update_parameters(self, **kw):
            made["params"] = kw

        def map_array(self, fn, jobs):
            made["fn"], made["jobs"] = fn, list(jobs)
            return [FakeJob() for _ in jobs]

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    rc = driver.main(["--only", "table2_mnist", "--results-root", str(tmp_path), "--executor", "slurm",
                      "--partition", "gpu", "--time", "600", "--no-wait"])
    assert rc == 0 and made["cluster"] == "slurm" and made["fn"] is cluster.run_job
    assert len(made["jobs"]) == len(TABLES["table2_mnist"].cells("smoke"))
    assert made["params"]["slurm_partition"] == "gpu" and made["params"]["timeout_min"] == 600
    assert made["params"]["gpus_per_node"] == 1 and "attnflow" in made["params"]["name"]
    assert all(j["results_root"] == str(tmp_path) for j in made["jobs"])
    assert dry["notebooks"] == []  # --no-wait: a rerun builds the tables

    # a rerun while the jobs still run submits none of them again, and says why the tables are not built
    class Running:
        def __init__(self, folder, job_id):
            self.state = "RUNNING"

    monkeypatch.setattr(submitit, "SlurmJob", Running)
    made.clear()
    rc = driver.main(["--only", "table2_mnist", "--results-root", str(tmp_path), "--executor", "slurm"])
    assert rc == 1 and "jobs" not in made and dry["notebooks"] == []
    assert "still running as Slurm job 4242_0" in capsys.readouterr().out


def test_local_executor_trains_a_cell_into_the_results_root(tmp_path, dry):
    pytest.importorskip("submitit")
    spec = TABLES["table2_mnist"].cells("smoke", steps=3)[0]
    rc = driver.main(["--only", "table2_mnist", "--cell", "0", "--set", "steps=3", "--executor", "local",
                      "--results-root", str(tmp_path), "--device", "cpu"])
    assert rc == 0
    recs = list(tmp_path.rglob(f"cells/{cell_key(spec)}.json"))
    assert len(recs) == 1, list(tmp_path.rglob("*.json"))
    rec = json.loads(recs[0].read_text())
    assert rec["steps"] == 3 and rec["device"] == "cpu"
    assert dry["notebooks"] == ["table2_mnist"]  # the driver waited for the job, then built the table
