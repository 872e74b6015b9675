"""The cell runner: train one cell (resuming its checkpoint), run its table's evaluators, write its record.

A cell's result is ``results/<profile>/cells/<key>.json``, keyed by the cell's identity
(:func:`~attnflow_core.repro.spec.cell_key`) and stamped with the code hash
(:func:`~attnflow_core.repro.provenance.code_hash`), so a rerun reuses a cell only if neither changed.
Tables and figures are built from cells, so a grid can be (re)run one cell at a time. Checkpoints live in
``<results_root>/_runs/<profile>/<key>-<code hash>/`` (:func:`~attnflow_core.repro.paths.runs_dir`).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import torch

from ..core.errors import AttnflowError, NonFiniteError
from ..core.io import write_json
from ..models.registry import build_model, config_to_dict, make_config
from ..training.config import TrainConfig
from ..training.trainer import fit
from .paths import results_dir, runs_dir
from .provenance import code_hash, git_commit, machine_record
from .spec import TABLES, CellContext, TableSpec, cell_key


def _table(table: str | TableSpec) -> TableSpec:
    return table if isinstance(table, TableSpec) else TABLES[table]


def load_cell(spec: dict[str, Any], profile: str, results_root: str | os.PathLike | None = None,
              reuse_from: str | os.PathLike | None = None) -> dict | None:
    """The cached record of a cell, or ``None`` if there is none for the current code. With ``reuse_from``
    (the canonical root of a variant grid's root), a current record found there is copied in, with the
    files named after the cell (sample grids), instead of training the same cell again."""
    key = cell_key(spec)
    path = results_dir(profile, results_root) / "cells" / f"{key}.json"
    if not path.exists():
        if reuse_from is None or load_cell(spec, profile, reuse_from) is None:
            return None
        src, dst = results_dir(profile, reuse_from), results_dir(profile, results_root)
        for f in sorted(src.rglob(f"*{key}*")):
            rel = f.relative_to(src)
            if f.is_file() and rel.parts[0] not in ("executed", "logs"):
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dst / rel)
    rec = json.loads(path.read_text())
    return rec if rec.get("code_hash") == code_hash(spec["table"]) else None


class Interrupted(Exception):
    """Training of a cell stopped on request (Ctrl-C); its checkpoint is saved and no record written."""


def run_cell(spec: dict[str, Any], profile: str, results_root: str | os.PathLike | None = None,
             data_root: str | os.PathLike | None = None, force: bool = False, progress: bool = True,
             rerun: bool = False, device: str | None = None,
             on_step: Callable[[int, int, float], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train and evaluate one cell of its table (``spec["table"]``), write its JSON record and return it.

    A current record is returned as it is unless ``rerun`` or ``force``; training resumes from the cell's
    checkpoint unless ``force`` (which starts it afresh). ``device`` overrides the spec's training device
    without changing the cell's key (the record states the device). ``on_step(step, steps, loss)`` reports
    progress; once ``should_stop()`` is true, training stops at the next step, saves its checkpoint and
    :class:`Interrupted` is raised."""
    if not (force or rerun):
        done = load_cell(spec, profile, results_root)
        if done is not None:
            return done
    table = TABLES[spec["table"]]
    out = results_dir(profile, results_root)
    key = cell_key(spec)
    if "train" not in spec:  # measured (a benchmark, real data), not trained
        return _measure_cell(table, spec, profile, key, out, data_root)
    data = table.load_data(spec, profile, None if data_root is None else str(data_root))
    tcfg = TrainConfig(**spec["train"])
    if device is not None:
        tcfg.device = device
    stop = {"asked": False}

    def step_hook(step: int, loss: float) -> None:
        if on_step is not None:
            on_step(step, tcfg.steps, loss)
        if should_stop is not None and should_stop():
            # the trainer ends its loop at an exhausted time budget and saves its checkpoint;
            # the budget is a run-only field, so the checkpoint's identity is unchanged
            stop["asked"] = True
            tcfg.time_budget_s = 0.0
    # checkpoints are tied to the code that wrote them: a code change never resumes an old run
    chash = code_hash(table)
    run_dir = runs_dir(profile, results_root) / f"{key}-{chash}"
    if force and (run_dir / "checkpoint.pt").exists():
        (run_dir / "checkpoint.pt").unlink()
    cfg = make_config(spec["model"])
    torch.manual_seed(tcfg.seed)
    model = build_model(cfg)
    validate = table.validation(spec, data) if tcfg.eval_every is not None else None
    if tcfg.eval_every is not None and validate is None:
        raise AttnflowError(f"cell {spec.get('label', key)!r} asks for validation every {tcfg.eval_every} steps "
                            f"but {table.name} gives it no validation split")
    try:
        result = fit(model, data.train, tcfg, run_dir, objective=table.objective(spec),
                     identity={"model": config_to_dict(cfg), "train": tcfg.identity()},
                     hooks=[*model.training_hooks(tcfg.steps)], progress=progress,
                     on_step=step_hook, validate=validate)
    except NonFiniteError as exc:
        # under the spike protocol a diverged seed is a result (counted, never averaged in)
        if not (table.record_divergence or tcfg.spike_factor is not None):
            raise
        n_params = sum(p.numel() for p in model.parameters())
        record = {"key": key, "label": spec.get("label", key), "table": table.name, "profile": profile, "spec": spec,
                  "n_train": data.n_train, "steps": None, "stopped_by": "diverged", "diverged": str(exc),
                  "seed": tcfg.seed,
                  "params": n_params, "params_M": n_params / 1e6, "train_seconds": math.nan,
                  **machine_record(), "code_hash": chash, "commit": git_commit(),
                  "history": [], "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json(out / "cells" / f"{key}.json", record)
        return record
    if stop["asked"]:
        raise Interrupted(f"stopped after {result.steps_done} of {tcfg.steps} steps; "
                          f"checkpoint {run_dir / 'checkpoint.pt'}")
    ctx = CellContext(table, spec, key, profile, out)
    metrics: dict[str, Any] = {}
    for ev in table.evaluators(spec):
        metrics.update(ev(result.model, data, ctx))
    last = result.history[-1] if result.history else {}
    n_params = sum(p.numel() for p in result.model.parameters())
    record = {
        "key": key, "label": spec.get("label", key), "table": table.name, "profile": profile, "spec": spec,
        "n_train": data.n_train, "steps": result.steps_done, "stopped_by": result.stopped_by,
        **{f"final_{k}": v for k, v in last.items() if k.startswith("train_")},
        "params": n_params, "params_M": n_params / 1e6, "train_seconds": result.train_seconds,
        "seed": tcfg.seed, "weights": result.weights, "selected_on": "validation" if validate else "last step",
        "best_step": result.best_step, "val_bpd": result.best_val, "val_curve": result.val_curve,
        "n_val": 0 if data.val is None else int(data.val.shape[0]), "ema_decay": tcfg.ema_decay,
        "spike_events": result.spike_events, "n_spikes": len(result.spike_events),
        **metrics,
        **machine_record(result.device), "code_hash": chash,
        "commit": git_commit(), "history": result.history, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(out / "cells" / f"{key}.json", record)
    return record


def _measure_cell(table: TableSpec, spec: dict[str, Any], profile: str, key: str, out, data_root) -> dict[str, Any]:
    """A cell that is measured, not trained: its record, written like a trained cell's."""
    ctx = CellContext(table, spec, key, profile, out)
    metrics = table.measure(spec, ctx, None if data_root is None else str(data_root))
    record = {
        "key": key, "label": spec.get("label", key), "table": table.name, "profile": profile, "spec": spec,
        **machine_record(), **metrics,  # a measured cell's own hardware/threads/device win
        "code_hash": code_hash(table), "commit": git_commit(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(out / "cells" / f"{key}.json", record)
    return record


def collect(table: str | TableSpec, profile: str, results_root: str | os.PathLike | None = None,
            run_missing: bool = True, data_root: str | os.PathLike | None = None, progress: bool = True,
            grid: dict[str, Any] | None = None, reuse_from: str | os.PathLike | None = None):
    """A DataFrame with one row per cell of ``table`` at ``grid`` (default: its notebook's declared grid),
    running missing cells if asked (``reuse_from``: see :func:`load_cell`)."""
    import pandas as pd

    t = _table(table)
    rows = []
    for spec in t.cells(profile, **(grid or {})):
        rec = load_cell(spec, profile, results_root, reuse_from=reuse_from)
        if rec is None:
            if not run_missing:
                raise FileNotFoundError(f"cell {spec['label']!r} of {t.name} ({profile}) has no result yet")
            rec = run_cell(spec, profile, results_root, data_root=data_root, progress=progress)
        row = t.row(spec, rec)
        rows.extend(row if isinstance(row, list) else [row])
    return pd.DataFrame(rows)
