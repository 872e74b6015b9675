"""Beyond one machine: ``--shard i/N`` splits the cells by hand, ``--executor slurm|local`` submits one job per
missing cell (a Slurm job array through submitit), and :func:`torchrun_main` trains one cell on several GPUs.

Every path writes the same records into the same results root (which must be shared by the nodes): a cell
trained on a cluster is read by the driver exactly like one trained in its own process pool, so a rerun of
the driver (without ``--shard``/``--no-wait``) collects them and builds the tables.

Sharding: the candidate cells of a command are numbered in the driver's order (tables in their order,
cells in their grid order, each cell key once per results root) *before* finished cells are dropped, and
shard ``i/N`` (``0 <= i < N``) owns the cells whose number is ``i`` modulo ``N``. So the split does not
depend on what is already done: N machines running the same command with shards ``0/N`` ... ``N-1/N``
train every cell exactly once, at any time, in any order.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import ParameterError
from .workers import format_seconds

EXECUTORS = ("pool", "local", "slurm")
# Slurm options: command line first, then the environment (so a site sets them once in its profile)
SLURM_OPTIONS = {"partition": "ATTNFLOW_SLURM_PARTITION", "gpus": "ATTNFLOW_SLURM_GPUS",
                 "time": "ATTNFLOW_SLURM_TIME", "account": "ATTNFLOW_SLURM_ACCOUNT"}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``; ``None`` -> ``None``."""
    if text is None:
        return None
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise ParameterError(f"--shard needs i/N (two integers, e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ParameterError(f"--shard {text}: needs N >= 1 and 0 <= i < N (shards are numbered from 0)")
    return i, n


def in_shard(index: int, shard: tuple[int, int] | None) -> bool:
    """Whether candidate cell number ``index`` belongs to ``shard`` (all do without one)."""
    return shard is None or index % shard[1] == shard[0]


def slurm_options(given: dict[str, Any]) -> dict[str, Any]:
    """The submitit parameters of ``--partition/--gpus/--time/--account`` (else ``$ATTNFLOW_SLURM_*``).
    ``time`` is in minutes (default 24 h), ``gpus`` per job (default 1)."""
    val = {k: given.get(k) if given.get(k) is not None else os.environ.get(env) for k, env in SLURM_OPTIONS.items()}
    try:
        gpus = int(val["gpus"]) if val["gpus"] is not None else 1
        minutes = int(val["time"]) if val["time"] is not None else 24 * 60
    except ValueError:
        raise ParameterError(f"--gpus and --time (minutes) must be integers, got {val['gpus']!r}, "
                             f"{val['time']!r} (from the options or $ATTNFLOW_SLURM_GPUS/_TIME)") from None
    params: dict[str, Any] = {"gpus_per_node": gpus, "timeout_min": minutes}
    if val["partition"]:
        params["slurm_partition"] = val["partition"]
    if val["account"]:
        params["slurm_account"] = val["account"]
    return params


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One cell as a submitted job (a Slurm array task or a local subprocess): train it into the shared
    results root; a failure writes its traceback to ``job["log"]`` like a pool worker's."""
    import torch

    from .cells import run_cell

    torch.set_num_threads(job.get("threads", 1))
    t0 = time.perf_counter()
    try:
        if job.get("tasks", 1) > 1:  # one Slurm task per GPU: DDP (rank 0's result is the job's)
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            train_distributed(job["spec"], job["profile"], job["results_root"], job["data_root"], job["device"],
                              job["force"])
        else:
            run_cell(job["spec"], job["profile"], job["results_root"], data_root=job["data_root"],
                     force=job["force"], rerun=job["rerun"], device=job["device"], progress=False)
        return {"status": "done", "seconds": time.perf_counter() - t0}
    except Exception as exc:
        log = Path(job["log"])
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        return {"status": "failed", "message": f"{type(exc).__name__}: {exc}"[:300], "log": str(log)}


_ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")


def _split_active(jobs: list[dict[str, Any]], folder: Path) -> tuple[list[dict], dict[int, dict]]:
    """Jobs whose cell is still queued or running from an earlier submission (``folder/pending.json``) are
    not submitted twice: ``(jobs to submit, {index: status of a skipped job})``."""
    import submitit

    from .spec import cell_key

    book = folder / "pending.json"
    pending = json.loads(book.read_text()) if book.exists() else {}
    todo, skipped = [], {}
    for i, j in enumerate(jobs):
        rec = pending.get(cell_key(j["spec"]))
        state = submitit.SlurmJob(folder=rec["folder"], job_id=rec["job_id"]).state if rec else None
        if state in _ACTIVE:
            skipped[i] = {"status": "queued", "message": f"still {state.lower()} as Slurm job {rec['job_id']} "
                                                         f"(submitted earlier); rerun once it has finished"}
        else:
            todo.append(j)
    return todo, skipped


def submit_cells(jobs: list[dict[str, Any]], kind: str, folder: Path, threads: int, options: dict[str, Any],
                 log: Callable[[str], None], wait: bool = True, poll_s: float = 10.0) -> list[dict] | None:
    """Submit ``jobs`` as one job array (``kind``: ``"slurm"`` or ``"local"``); with ``wait``, the status
    dict of each job (like :func:`~attnflow_core.repro.workers.run_cells`), else ``None`` once submitted."""
    import submitit

    if not jobs:
        return []
    all_jobs, skipped = jobs, {}
    if kind == "slurm":
        jobs, skipped = _split_active(jobs, folder)
        for st in skipped.values():
            log(f"  {st['message']}")
        if not jobs:
            return [skipped[i] for i in range(len(all_jobs))] if wait else None
    ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=kind)
    params = {"cpus_per_task": threads, "slurm_array_parallelism": len(jobs), **options}
    if kind == "local":  # the local executor knows no partitions, accounts or array limits
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    tasks = int(params.get("gpus_per_node") or 1)  # several GPUs for a cell: one DDP process on each
    if tasks > 1:
        params["tasks_per_node"] = tasks
    ex.update_parameters(name="attnflow-cell", **params)
    for j in jobs:
        j["threads"], j["tasks"] = threads, tasks
    submitted = ex.map_array(run_job, jobs)
    log(f"submitted {len(submitted)} cell job(s) ({kind}): {submitted[0].job_id.split('_')[0]}; "
        f"logs in {folder}")
    if kind == "slurm":  # a rerun before they finish must not submit them again
        from .spec import cell_key

        book = folder / "pending.json"
        pending = json.loads(book.read_text()) if book.exists() else {}
        pending.update({cell_key(j["spec"]): {"job_id": s.job_id, "folder": str(folder / "%j")}
                        for j, s in zip(jobs, submitted)})
        book.parent.mkdir(parents=True, exist_ok=True)
        book.write_text(json.dumps(pending, indent=1))
    if not wait:
        return None
    t0, last = time.perf_counter(), time.perf_counter()
    try:
        while not all(s.done() for s in submitted):
            time.sleep(min(poll_s, 1.0) if kind == "local" else poll_s)
            if time.perf_counter() - last >= max(poll_s, 30.0):
                last = time.perf_counter()
                n_done = sum(s.done() for s in submitted)
                log(f"  ... {n_done}/{len(submitted)} cell job(s) finished after {format_seconds(last - t0)}")
    except KeyboardInterrupt:
        if kind == "local":  # local jobs die with the driver: stop them (they resume from their checkpoints)
            for s in submitted:
                s.cancel(check=False)
            log("Ctrl-C: cancelled the local cell jobs; a rerun resumes them from their last checkpoints")
        else:
            log(f"Ctrl-C: the Slurm jobs keep running (scancel {submitted[0].job_id.split('_')[0]} stops them); "
                f"rerun this command to collect their records")
        raise
    out: list[dict] = []
    for j, s in zip(jobs, submitted):
        what = f"{j['spec']['table']} {j['spec']['label']}"
        try:
            res = s.results()[0]  # rank 0's (a multi-GPU cell runs one task per GPU)
        except Exception as exc:  # the job died (time limit, node failure, out of memory)
            res = {"status": "failed", "message": f"job {s.job_id} died: {type(exc).__name__}: "
                                                  f"{str(exc).splitlines()[-1] if str(exc) else ''}"[:300],
                   "log": str(s.paths.stderr)}
        out.append(res)
        if res["status"] == "done":
            log(f"  done   {what} in {res['seconds']:.0f}s (job {s.job_id})")
        else:
            log(f"  FAILED {what}: {res['message']} (traceback: {res['log']})")
    it = iter(out)
    return [skipped[i] if i in skipped else next(it) for i in range(len(all_jobs))]


def train_distributed(spec: dict[str, Any], profile: str, root: str | os.PathLike, data_root: str | None,
                      device: str | None, force: bool = False) -> None:
    """Train one cell on the processes that ``torchrun`` (or a multi-task Slurm job) started: rank 0 runs
    :func:`~attnflow_core.repro.cells.run_cell` (record, evaluators, checkpoints), the others make the
    same :func:`~attnflow_core.training.trainer.fit` call (same model, seed, identity, hooks)."""
    import torch

    from ..models.registry import build_model, config_to_dict, make_config
    from ..training.config import TrainConfig
    from ..training.distributed import barrier, init_from_env, shutdown, world
    from ..training.trainer import fit
    from .cells import load_cell, run_cell
    from .paths import runs_dir
    from .provenance import code_hash
    from .spec import TABLES, cell_key

    if not force and load_cell(spec, profile, root) is not None:
        return  # every rank sees the same shared record
    init_from_env(device or spec["train"].get("device", "auto"))
    try:
        rank, size = world()
        run_dir = runs_dir(profile, root) / f"{cell_key(spec)}-{code_hash(spec['table'])}"
        if force and rank == 0:
            (run_dir / "checkpoint.pt").unlink(missing_ok=True)
        barrier()
        if rank == 0:
            run_cell(spec, profile, root, data_root=data_root, rerun=True, device=device, progress=size == 1)
        else:
            table = TABLES[spec["table"]]
            data = table.load_data(spec, profile, data_root)
            tcfg = TrainConfig(**spec["train"])
            if device is not None:
                tcfg.device = device
            cfg = make_config(spec["model"])
            torch.manual_seed(tcfg.seed)
            model = build_model(cfg)
            fit(model, data.train, tcfg, run_dir, objective=table.objective(spec),
                identity={"model": config_to_dict(cfg), "train": tcfg.identity()},
                hooks=[*model.training_hooks(tcfg.steps)], progress=False)
        barrier()  # rank 0 has written the record
    finally:
        shutdown()


def torchrun_main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc_per_node G -m attnflow_core.repro.cluster --only TABLE --cell N [--profile ...]``:
    train one cell with DistributedDataParallel on G processes (NCCL on GPUs, gloo on CPUs); rank 0 writes
    the record and the checkpoint (which resumes on any number of processes) and runs the evaluators."""
    import argparse

    from .paths import PROFILES, default_results_root
    from .spec import TABLES, cell_key

    p = argparse.ArgumentParser(prog="torchrun ... -m attnflow_core.repro.cluster", description=torchrun_main.__doc__)
    p.add_argument("--profile", choices=PROFILES, default="smoke")
    p.add_argument("--only", required=True, choices=sorted(TABLES), help="the table of the cell")
    p.add_argument("--cell", required=True, help="the cell: label, index or key")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None)
    p.add_argument("--force", action="store_true", help="train from scratch even if a record or checkpoint exists")
    p.add_argument("--data-root", default=None)
    p.add_argument("--results-root", default=None)
    a = p.parse_args(argv)
    root = Path(a.results_root).expanduser().resolve() if a.results_root else default_results_root()
    cells = TABLES[a.only].cells(a.profile) if TABLES[a.only].has_cells else []
    picked = [s for i, s in enumerate(cells) if a.cell in (str(i), s["label"], cell_key(s)) and "train" in s]
    if not picked:
        p.error(f"no trained cell {a.cell!r} in {a.only}; cells: {[c['label'] for c in cells]}")
    data_root = str(Path(a.data_root).expanduser().resolve()) if a.data_root else None
    train_distributed(picked[0], a.profile, root, data_root, a.device, a.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(torchrun_main())
