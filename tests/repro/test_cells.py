"""The cell runner: a rerun resumes its checkpoint (``force`` restarts), a stop request saves a checkpoint
and writes no record, workers report progress; checkpoints stay inside the results root."""
import json
import queue
import threading

import pytest
import torch

from attnflow_core.repro import TABLES, Interrupted, cell_key, load_cell, run_cell
from attnflow_core.repro.paths import runs_dir


@pytest.fixture
def spec():
    return TABLES["ablation_heads"].cells("smoke", heads=[1], steps=4)[0]


def _checkpoint(root, spec):
    (path,) = (runs_dir("smoke", root)).glob(f"{cell_key(spec)}-*/checkpoint.pt")
    return torch.load(path, weights_only=False)


def test_stop_saves_a_checkpoint_and_a_rerun_resumes_it(tmp_path, spec, device):
    seen = []
    with pytest.raises(Interrupted, match="^stopped after 2 of 4 steps"):
        run_cell(spec, "smoke", tmp_path, progress=False, device=str(device), on_step=lambda s, n, loss: seen.append((s, n)),
                 should_stop=lambda: len(seen) >= 2)
    assert seen == [(1, 4), (2, 4)]
    assert load_cell(spec, "smoke", tmp_path) is None  # no record for a stopped cell
    assert _checkpoint(tmp_path, spec)["step"] == 2
    assert str(runs_dir("smoke", tmp_path)).startswith(str(tmp_path))  # inside the chosen root
    steps_run = []
    rec = run_cell(spec, "smoke", tmp_path, progress=False, device=str(device), on_step=lambda s, n, loss: steps_run.append(s))
    assert steps_run == [3, 4] and rec["steps"] == 4  # resumed at step 2
    # a rerun (the driver's --cell) re-evaluates from the finished checkpoint: no step is trained again
    again = run_cell(spec, "smoke", tmp_path, progress=False, device=str(device), rerun=True,
                     on_step=lambda s, n, loss: steps_run.append(s))
    assert steps_run == [3, 4] and again["train_seconds"] == rec["train_seconds"]
    assert again["history"] == rec["history"] and again["test_bpd"] == rec["test_bpd"]
    # --force starts afresh
    forced = run_cell(spec, "smoke", tmp_path, progress=False, device=str(device), force=True,
                      on_step=lambda s, n, loss: steps_run.append(s))
    assert steps_run == [3, 4, 1, 2, 3, 4] and forced["steps"] == 4


def test_a_worker_reports_progress_and_failures(tmp_path, spec):
    from attnflow_core.repro import workers

    q = queue.Queue()
    workers._WORKER.update(queue=q, stop=threading.Event())
    job = {"spec": spec, "profile": "smoke", "results_root": str(tmp_path), "data_root": None, "force": False,
           "rerun": False, "device": "cpu", "every": 0.0, "log": str(tmp_path / "log.txt")}
    assert workers.train_cell(job)["status"] == "done"
    msgs = [q.get_nowait() for _ in range(q.qsize())]
    assert [m["step"] for m in msgs] == [2, 3, 4] and all(m["steps"] == 4 and m["eta"] >= 0 for m in msgs)
    assert json.loads(next((tmp_path / "smoke" / "cells").glob("*.json")).read_text())["device"] == "cpu"
    bad = {**job, "spec": {**spec, "model": {**spec["model"], "heads": 0}}, "force": True}
    res = workers.train_cell(bad)
    assert res["status"] == "failed" and "Traceback" in (tmp_path / "log.txt").read_text()


def test_a_resumed_cell_says_so_first(tmp_path, spec):
    from attnflow_core.repro import workers

    seen = []
    with pytest.raises(Interrupted):
        run_cell(spec, "smoke", tmp_path, progress=False, on_step=lambda s, n, loss: seen.append(s),
                 should_stop=lambda: len(seen) >= 2)
    q = queue.Queue()
    workers._WORKER.update(queue=q, stop=threading.Event())
    job = {"spec": spec, "profile": "smoke", "results_root": str(tmp_path), "data_root": None, "force": False,
           "rerun": False, "device": None, "every": 1e9, "log": str(tmp_path / "log.txt")}
    assert workers.train_cell(job)["status"] == "done"
    assert q.get_nowait() == {"label": spec["label"], "table": "ablation_heads", "resumed": 2, "steps": 4}
