"""Regenerate the paper's tables and figures: ``python -m attnflow_core.repro --profile smoke``.

It trains the missing grid cells of the chosen tables in worker processes (``--jobs`` at a time, with
``--threads`` torch threads each; progress every ``--progress-every`` seconds), then runs each table's
notebook with papermill, which collects the cell records and builds the CSV, the Markdown table and the
figure. Executed notebooks go to ``results/<profile>/executed/``. A failing cell or notebook leaves every
other result in place; the driver names it and exits 1.

``--set NAME=VALUE`` changes a notebook parameter of the chosen tables (``--set heads=2,4 --set steps=50``):
a grid other than the notebook's goes to its own results root (printed), never over the canonical tables.
``--cell N`` reruns one cell, resuming from its checkpoint (``--force``: from scratch); every other table
that shares a rerun cell is rebuilt too. Ctrl-C stops the running cells within a step, saves their
checkpoints and prints the command that resumes.

Beyond one machine (:mod:`~attnflow_core.repro.cluster`, docs/cluster.md): ``--shard i/N`` trains only the
cells of shard ``i`` (of ``N``, by cell number) and builds no table; ``--executor slurm`` submits one job per
missing cell as a Slurm job array through submitit (``--partition --gpus --time --account`` or
``$ATTNFLOW_SLURM_*``; ``--executor local`` runs the same path as local subprocesses), waits for them
(``--no-wait``: returns once submitted; a rerun collects the records) and builds the tables.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import ParameterError
from ..core.io import write_json
from .cells import load_cell
from .cluster import EXECUTORS, in_shard, parse_shard, slurm_options, submit_cells
from .index import write_index
from .params import COMMON, declared_parameters, resolve_grid, variant_root
from .paths import PROFILES, default_results_root, notebook_dir, results_dir, runs_dir
from .provenance import code_hash, git_commit, hardware_label
from .report import stale_tables
from .spec import TABLES, cell_key
from .workers import Interrupt, run_cells

# kernels talk over IPC sockets in a private folder: no TCP port races between parallel notebooks,
# and no "running over TCP without encryption" warning per kernel
_KERNEL_LOG = ["--IPKernelApp.log_level=CRITICAL"]  # the kernels' own chatter; cell errors still surface


def _kernel_manager_class(sock_dir: str):
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.transport = "ipc"
            self.ip = os.path.join(sock_dir, f"k{id(self)}")

    return IPCKernelManager


def _execute(name: str, params: dict, out_path: Path, log: Callable[[str], None], sock_dir: str) -> str | None:
    """Run one notebook with papermill; the executed copy replaces ``out_path`` only on success."""
    import papermill as pm

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.running.ipynb")
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(notebook_dir() / f"{name}.ipynb"), str(tmp), parameters=params,
                            cwd=str(notebook_dir()), progress_bar=False, log_output=False,
                            kernel_manager_class=_kernel_manager_class(sock_dir), extra_arguments=_KERNEL_LOG)
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        failed = out_path.with_name(f"{out_path.stem}.failed.ipynb")
        if tmp.exists():
            os.replace(tmp, failed)
        lines = str(exc).strip().splitlines()
        log(f"  FAILED {name} after {time.perf_counter() - t0:.0f}s -> {failed}")
        return (lines[-1] if lines else repr(exc))[:300]
    os.replace(tmp, out_path)
    log(f"  built  {name} in {time.perf_counter() - t0:.0f}s")
    return None


def prune_stale_cells(out: Path, profile: str) -> int:
    """Delete cell records (with their sample grids and executed notebooks) of cells that no registered
    table of this profile has any more, so ``results/`` holds only what the current code produces."""
    keep = {cell_key(spec) for name in TABLES if profile in TABLES[name].profiles
            for spec in TABLES[name].cells(profile)}
    n = 0
    for rec in sorted((out / "cells").glob("*.json")):
        if rec.stem not in keep:
            for p in (rec, out / "samples" / f"{rec.stem}.png", out / "executed" / "cells" / f"{rec.stem}.ipynb",
                      out / "logs" / f"{rec.stem}.log"):
                p.unlink(missing_ok=True)
            n += 1
    return n


def _parse_sets(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``NAME=VALUE`` pairs, per chosen table: each table gets the ones its notebook declares; a name that
    no chosen table declares (a typo) is an error."""
    pairs = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--set needs NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if k.strip() in COMMON:
            raise ParameterError(f"--set {k.strip()}: use --profile / --results-root / --data-root")
        pairs[k.strip()] = v
    per_table = {n: {k: v for k, v in pairs.items() if k in declared_parameters(n)} for n in names}
    unknown = [k for k in pairs if not any(k in t for t in per_table.values())]
    if unknown:
        declared = sorted({k for n in names for k in declared_parameters(n) if k not in COMMON})
        hints = [k + (f" (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(k, declared, n=1)) else "")
                 for k in unknown]
        raise ParameterError(f"no chosen table has the parameter {', '.join(hints)}; theirs: {', '.join(declared)}")
    return per_table


def _resume_command(argv: list[str]) -> str:
    return "python -m attnflow_core.repro " + " ".join(a for a in argv if a != "--force")


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    names_all = [t.name for t in sorted((TABLES[n] for n in TABLES), key=lambda t: t.order)]
    p = argparse.ArgumentParser(prog="python -m attnflow_core.repro", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=PROFILES, default="smoke")
    p.add_argument("--only", nargs="*", choices=names_all, help="run only these notebooks (default: all)")
    p.add_argument("--cell", help="with one --only table: rerun just this cell (label or index), resuming its "
                                  "checkpoint unless --force; then every table that uses it")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a notebook parameter of the chosen tables, e.g. heads=2,4 or steps=50 (repeatable)")
    p.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                   help="cells trained in parallel, one worker process each (default: 2 on 2+ cores)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per cell (default 1, whatever --jobs is: numbers depend on the thread count)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                   help="training device of every cell (default: each cell's own; the paper profile needs a GPU "
                        "or an explicit --device cpu)")
    p.add_argument("--progress-every", type=float, default=30.0, help="seconds between progress lines of a cell")
    p.add_argument("--force", action="store_true", help="retrain cells from scratch even if a result exists")
    p.add_argument("--data-root", default=None, help="data root (else $ATTNFLOW_DATA)")
    p.add_argument("--results-root", default=None, help="results root (default: the checkout's results/)")
    p.add_argument("--shard", metavar="i/N", help="train only the cells whose number is i modulo N (0 <= i < N; "
                                                "numbered before finished cells are dropped) and build no table")
    p.add_argument("--executor", choices=EXECUTORS, default="pool",
                   help="pool: local worker processes (--jobs); slurm: one Slurm job per missing cell (a job "
                        "array, through submitit); local: the same jobs as local subprocesses")
    p.add_argument("--partition", help="Slurm partition (else $ATTNFLOW_SLURM_PARTITION)")
    p.add_argument("--gpus", help="GPUs per cell job (else $ATTNFLOW_SLURM_GPUS, default 1)")
    p.add_argument("--time", help="time limit per cell job in minutes (else $ATTNFLOW_SLURM_TIME, default 1440)")
    p.add_argument("--account", help="Slurm account (else $ATTNFLOW_SLURM_ACCOUNT)")
    p.add_argument("--no-wait", action="store_true",
                   help="with --executor slurm: return once submitted; rerun the command to build the tables")
    a = p.parse_args(argv)
    lacking = [n for n in (a.only or []) if a.profile not in TABLES[n].profiles]
    if lacking:
        p.error(f"{', '.join(lacking)} has no {a.profile} profile (only {', '.join(TABLES[lacking[0]].profiles)})")
    skipped = [n for n in names_all if a.profile not in TABLES[n].profiles]
    names_all = [n for n in names_all if n not in skipped]

    if a.threads < 1:
        p.error("--threads must be at least 1")
    # the notebooks run with notebooks/ as their working directory: resolve every path before passing it on
    root = Path(a.results_root).expanduser().resolve() if a.results_root else default_results_root()
    data_root = str(Path(a.data_root).expanduser().resolve()) if a.data_root else None
    out = results_dir(a.profile, root)
    names = a.only or names_all
    if a.cell is not None and (len(names) != 1 or not TABLES[names[0]].has_cells):
        p.error("--cell needs exactly one table with grid cells in --only")
    try:
        shard = parse_shard(a.shard)
        submit_opts = slurm_options(vars(a)) if a.executor != "pool" else {}
        if a.no_wait and a.executor != "slurm":
            raise ParameterError("--no-wait needs --executor slurm (local jobs end with the driver)")
        sets = _parse_sets(a.set, names)
        plans = {}  # table -> (grid overrides, its results root, its cells)
        for name in names:
            table = TABLES[name]
            grid, is_default = resolve_grid(name, sets[name])
            plans[name] = ({k: grid[k] for k in sets[name]}, root if is_default else variant_root(name, grid, root),
                           table.cells(a.profile, **grid) if table.has_cells else [])
    except ParameterError as exc:
        p.error(str(exc))
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, flush=True)

    if skipped and not a.only:
        log(f"not in the {a.profile} profile (yet): {', '.join(skipped)}")

    # which cells to train: missing ones (all with --force, the chosen one with --cell), each key once per root
    jobs, seen, numbered = [], set(), {}  # numbered: (root, key) -> candidate number (for --shard)
    for name in names:
        overrides, troot, cells = plans[name]
        if troot != root:
            log(f"[{name}] non-default grid {overrides}: results go to {troot}")
        picked = [(i, s) for i, s in enumerate(cells)
                  if a.cell is None or a.cell in (str(i), s["label"], cell_key(s))]
        if a.cell is not None and not picked:
            p.error(f"no cell {a.cell!r} in {name}; cells: {[c['label'] for c in cells]}")
        for i, spec in picked:
            key = cell_key(spec)
            number = numbered.setdefault((troot, key), len(numbered))
            if (troot, key) in seen or not in_shard(number, shard):
                continue
            reuse = None if troot == root or a.force else root  # a variant reuses the canonical root's cells
            if a.force or a.cell is not None or load_cell(spec, a.profile, troot, reuse_from=reuse) is None:
                seen.add((troot, key))
                jobs.append({"spec": spec, "profile": a.profile, "results_root": str(troot), "data_root": data_root,
                             "force": a.force, "rerun": a.cell is not None, "device": a.device,
                             "every": a.progress_every, "table_name": name,
                             "log": str(results_dir(a.profile, troot) / "logs" / f"{key}.log")})
    if a.profile == "paper" and a.device is None and a.executor == "pool" and any("train" in j["spec"] for j in jobs):
        import torch

        if not torch.cuda.is_available():
            p.error(f"{len(jobs)} paper-profile cell(s) to train (up to 200k steps each) and no GPU here; pass "
                    f"--device cpu to train them on the CPU anyway (the driver prints each cell's ETA)")

    # tables outside the selection that a rerun cell leaves out of date (or an earlier rerun did: their
    # provenance): rebuilt when all their other cells are current, else named (canonical root only)
    rerun_keys = {cell_key(j["spec"]) for j in jobs if Path(j["results_root"]) == root}
    stale = stale_tables(a.profile, root)
    extra = []
    for other in names_all:
        if other in names or not TABLES[other].has_cells:
            continue
        specs = TABLES[other].cells(a.profile)
        shared = rerun_keys & {cell_key(s) for s in specs}
        if not (shared and (out / f"{other}.csv").exists()) and other not in stale:
            continue
        why = (f"shares {len(shared)} rerun cell(s)" if shared else
               f"was built from records that changed since ({', '.join(map(str, stale[other]))})")
        missing = [s["label"] for s in specs if cell_key(s) not in rerun_keys and load_cell(s, a.profile, root) is None]
        if missing:
            log(f"[{other}] {why}, but {len(missing)} of its other cells have no current record: it stays out of "
                f"date until `--only {other}` rebuilds it")
        else:
            extra.append(other)
            log(f"[{other}] {why}: rebuilding it too")
    notebooks = [n for n in names_all if n in names or n in extra]
    if shard is not None or a.no_wait:  # the other shards' (or the submitted) cells are not there yet
        notebooks = []

    failures: list[tuple[str, str]] = []
    common = {"profile": a.profile, "results_root": str(root), "data_root": data_root}
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # the debugger's frozen-modules note
    interrupted = False
    try:
        if shard is not None:
            log(f"shard {shard[0]}/{shard[1]}: {sum(in_shard(i, shard) for i in range(len(numbered)))} of "
                f"{len(numbered)} cell(s), {len(jobs)} of them to train")
        if a.executor == "pool":
            log(f"{len(jobs)} cell(s) to train, {a.jobs} at a time, {a.threads} thread(s) each")
            statuses = run_cells(jobs, a.jobs, a.threads, log)
        else:
            log(f"{len(jobs)} cell(s) to train as {a.executor} jobs, {a.threads} thread(s) each")
            folder = runs_dir(a.profile, root) / "submitit"
            statuses = submit_cells(jobs, a.executor, folder, a.threads, submit_opts, log, wait=not a.no_wait)
            if statuses is None:
                log("submitted; rerun this command without --no-wait once the jobs are done to build the tables")
                statuses = [{"status": "done"}] * len(jobs)  # nothing is built (see notebooks above)
        failed = {cell_key(j["spec"]) for j, st in zip(jobs, statuses) if st["status"] != "done"}
        failures += [(f"{j['table_name']} cell {j['spec']['label']}", st.get("message", st["status"]))
                     for j, st in zip(jobs, statuses) if st["status"] != "done"]
        uses = {n: {cell_key(s) for s in (plans[n][2] if n in plans else TABLES[n].cells(a.profile))}
                for n in notebooks}
        failed_tables = {n for n in notebooks if uses[n] & failed}
        with tempfile.TemporaryDirectory(prefix="attnflow-kernels-") as sock_dir:
            for name in notebooks:
                table = TABLES[name]
                log(f"[{name}] ({a.profile})")
                if name in failed_tables:
                    log(f"  skipping the {name} summary: some of its cells failed")
                    failures.append((name, "not built: cell failures above"))
                    continue
                overrides, troot, _ = plans.get(name, ({}, root, None))
                # a table notebook finds its variant root itself (params.table_run); a walkthrough is given it
                given = {**common, "results_root": str(root if table.has_cells else troot)}
                params = {**{k: v for k, v in given.items() if k in declared_parameters(name)}, **overrides}
                err = _execute(name, params, results_dir(a.profile, troot) / "executed" / f"{name}.ipynb", log,
                               sock_dir)
                if err:
                    failures.append((name, err))
    except (Interrupt, KeyboardInterrupt):
        interrupted = True
        failures.append(("interrupted", "Ctrl-C"))

    if not a.only and a.cell is None and not a.set and not failures and shard is None and not a.no_wait:
        pruned = prune_stale_cells(out, a.profile)
        if pruned:
            log(f"  removed {pruned} cell record(s) that no table of this code asks for")
    info = {"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": git_commit(), "hardware": hardware_label(),
            "threads_per_cell": a.threads, "code_hash": code_hash(),
            "command": "python -m attnflow_core.repro " + " ".join(argv),
            "seconds": round(time.perf_counter() - t_start, 1), "failures": failures,
            "rebuilt_shared": extra}
    if a.only or a.cell is not None or a.set or interrupted or shard is not None or a.no_wait:  # logged beside the last full run, never over it
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "partial_runs.jsonl", "a") as f:
            f.write(json.dumps(info) + "\n")
    else:
        write_json(out / "run_info.json", info)
    write_index(root)
    if interrupted:
        log("interrupted: running cells saved their checkpoints. Resume with:\n  " + _resume_command(argv))
        return 130
    log(f"finished in {time.perf_counter() - t_start:.0f}s; index: {root / 'README.md'}")
    if failures:
        log("FAILED:")
        for label, err in failures:
            log(f"  - {label}: {err}")
        return 1
    return 0
