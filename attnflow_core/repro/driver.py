"""Regenerate the paper's tables and figures: ``python -m attnflow_core.repro --profile smoke``.

For every registered table (in order) it runs ``notebooks/run_cell.ipynb`` once per missing grid cell
(a papermill parameter sweep, ``--jobs`` at a time), then the table's own notebook, which builds the CSV,
the Markdown table and the figure. Executed notebooks go to ``results/<profile>/executed/``.
A notebook that fails leaves every earlier result in place; the driver names it and exits 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core.io import write_json
from .cells import load_cell
from .index import write_index
from .paths import PROFILES, default_results_root, notebook_dir, results_dir
from .provenance import code_hash, git_commit, hardware_label
from .spec import TABLES, cell_key

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
        log(f"  FAILED {name} {params.get('cell', '')} after {time.perf_counter() - t0:.0f}s -> {failed}")
        return (lines[-1] if lines else repr(exc))[:300]
    os.replace(tmp, out_path)
    log(f"  done   {name} {params.get('cell', '')} in {time.perf_counter() - t0:.0f}s")
    return None


def prune_stale_cells(out: Path, profile: str) -> int:
    """Delete cell records (with their sample grids and executed notebooks) of cells that no registered
    table of this profile has any more, so ``results/`` holds only what the current code produces."""
    keep = {cell_key(spec) for name in TABLES for spec in TABLES[name].cells(profile)}
    n = 0
    for rec in sorted((out / "cells").glob("*.json")):
        if rec.stem not in keep:
            for p in (rec, out / "samples" / f"{rec.stem}.png", out / "executed" / "cells" / f"{rec.stem}.ipynb"):
                p.unlink(missing_ok=True)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    names_all = [t.name for t in sorted((TABLES[n] for n in TABLES), key=lambda t: t.order)]
    p = argparse.ArgumentParser(prog="python -m attnflow_core.repro", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=PROFILES, default="smoke")
    p.add_argument("--only", nargs="*", choices=names_all, help="run only these notebooks (default: all)")
    p.add_argument("--cell", help="with one --only table: (re)run just this cell (label or index), then the table")
    p.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                   help="grid cells trained in parallel (default: 2 on 2+ cores)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per cell (default 1, whatever --jobs is: numbers depend on the thread count)")
    p.add_argument("--force", action="store_true", help="retrain cells even if a result for this code exists")
    p.add_argument("--data-root", default=None, help="data root (else $ATTNFLOW_DATA)")
    p.add_argument("--results-root", default=None, help="results root (default: the checkout's results/)")
    a = p.parse_args(argv)

    if a.threads < 1:
        p.error("--threads must be at least 1")
    # the notebooks run with notebooks/ as their working directory: resolve every path before passing it on
    root = Path(a.results_root).expanduser().resolve() if a.results_root else default_results_root()
    data_root = str(Path(a.data_root).expanduser().resolve()) if a.data_root else None
    out = results_dir(a.profile, root)
    names = a.only or names_all
    if a.cell is not None and (len(names) != 1 or not TABLES[names[0]].has_cells):
        p.error("--cell needs exactly one table with grid cells in --only")
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, flush=True)

    failures: list[tuple[str, str]] = []
    threads = a.threads
    common = {"profile": a.profile, "results_root": str(root), "data_root": data_root}
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # the debugger's frozen-modules note
    ran_this_run: set[str] = set()  # a cell shared by two tables is trained once per invocation
    with tempfile.TemporaryDirectory(prefix="attnflow-kernels-") as sock_dir:
        for name in names:
            table = TABLES[name]
            log(f"[{name}] ({a.profile})")
            if table.has_cells:
                cells = table.cells(a.profile)
                todo = []
                for i, spec in enumerate(cells):
                    if a.cell is not None and a.cell not in (str(i), spec["label"], cell_key(spec)):
                        continue
                    if a.force or a.cell is not None or load_cell(spec, a.profile, root) is None:
                        todo.append((i, spec))
                if a.cell is not None and not todo:
                    p.error(f"no cell {a.cell!r} in {name}; cells: {[c['label'] for c in cells]}")
                jobs = []
                for i, spec in todo:
                    if cell_key(spec) not in ran_this_run:
                        ran_this_run.add(cell_key(spec))
                        jobs.append((i, spec))
                log(f"  {len(cells)} cells, {len(jobs)} to run, {a.jobs} at a time")

                def run_one(item, name=name):
                    i, spec = item
                    params = {**common, "table": name, "cell": str(i), "force": a.force or a.cell is not None,
                              "threads": threads}
                    err = _execute("run_cell", params, out / "executed" / "cells" / f"{cell_key(spec)}.ipynb",
                                   log, sock_dir)
                    return (f"{name} cell {i} ({spec['label']})", err)

                with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
                    cell_failures = [(label, err) for label, err in pool.map(run_one, jobs) if err]
                failures += cell_failures
                if cell_failures:
                    log(f"  skipping the {name} summary: some of its cells failed")
                    failures.append((name, "not built: cell failures above"))
                    continue
            err = _execute(name, table.notebook_params(common), out / "executed" / f"{name}.ipynb", log, sock_dir)
            if err:
                failures.append((name, err))

    if not a.only and a.cell is None and not failures:
        pruned = prune_stale_cells(out, a.profile)
        if pruned:
            log(f"  removed {pruned} cell record(s) that no table of this code asks for")
    info = {"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": git_commit(), "hardware": hardware_label(),
            "threads_per_cell": threads, "code_hash": code_hash(),
            "command": "python -m attnflow_core.repro " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seconds": round(time.perf_counter() - t_start, 1), "failures": failures}
    if a.only or a.cell is not None:  # a partial run is logged beside the last full run, never over it
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "partial_runs.jsonl", "a") as f:
            f.write(json.dumps(info) + "\n")
    else:
        write_json(out / "run_info.json", info)
    write_index(root)
    log(f"finished in {time.perf_counter() - t_start:.0f}s; index: {root / 'README.md'}")
    if failures:
        log("FAILED notebooks:")
        for label, err in failures:
            log(f"  - {label}: {err}")
        return 1
    return 0
