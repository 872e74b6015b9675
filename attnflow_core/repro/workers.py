"""Cells train in worker processes: a pool of ``--jobs`` spawned processes with ``--threads`` torch threads
each, fed plain cell specs (no notebook, no kernel per cell).

Workers report progress (step, bits/dim, ETA) through a queue, which the driver prints. Ctrl-C reaches
the driver only (workers ignore SIGINT): it sets a shared event, every running cell stops at its next
training step, saves its checkpoint and reports ``interrupted``; a second Ctrl-C kills the workers (their
cells then resume from the last periodic checkpoint). A failing cell writes its traceback to
``<profile>/logs/<key>.log`` and leaves every other result in place.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

_WORKER: dict[str, Any] = {}


def _init_worker(threads: int, queue, stop) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what Ctrl-C means
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(queue=queue, stop=stop)


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def train_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in a worker: ``job`` has ``spec``, ``profile``, ``results_root``, ``data_root``, ``force``,
    ``rerun``, ``device``, ``every`` (seconds between progress reports). Returns a status dict."""
    from .cells import Interrupted, run_cell

    queue, stop = _WORKER["queue"], _WORKER["stop"]
    label, t0 = job["spec"]["label"], time.perf_counter()
    seen: dict[str, Any] = {"first": None, "last": t0}

    def on_step(step: int, steps: int, loss: float) -> None:
        now = time.perf_counter()
        if seen["first"] is None:
            seen["first"] = (step, now)
            if step > 1:
                queue.put({"label": label, "table": job["spec"]["table"], "resumed": step - 1, "steps": steps})
            return
        if now - seen["last"] >= job["every"]:
            seen["last"] = now
            s0, t_first = seen["first"]
            eta = (now - t_first) / max(step - s0, 1) * (steps - step)
            queue.put({"label": label, "table": job["spec"]["table"], "step": step, "steps": steps,
                       "loss": loss, "eta": eta})

    try:
        run_cell(job["spec"], job["profile"], job["results_root"], data_root=job["data_root"], force=job["force"],
                 rerun=job["rerun"], device=job["device"], progress=False, on_step=on_step,
                 should_stop=stop.is_set)
        return {"status": "done", "seconds": time.perf_counter() - t0}
    except Interrupted as exc:
        return {"status": "interrupted", "message": str(exc)}
    except Exception as exc:
        log = Path(job["log"])
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        return {"status": "failed", "message": f"{type(exc).__name__}: {exc}"[:300], "log": str(log)}


class Interrupt(Exception):
    """Ctrl-C stopped the run; running cells saved their checkpoints."""


def run_cells(jobs: list[dict[str, Any]], n_workers: int, threads: int, log: Callable[[str], None]) -> list[dict]:
    """Train ``jobs`` in a process pool; one status dict per job (in order). Raises :class:`Interrupt` after
    a Ctrl-C once the running cells have stopped."""
    if not jobs:
        return []
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()

    def printer() -> None:
        while (msg := queue.get()) is not None:
            if "resumed" in msg:
                log(f"  ... {msg['table']} {msg['label']}: resumed from its checkpoint at step {msg['resumed']}/"
                    f"{msg['steps']}")
                continue
            log(f"  ... {msg['table']} {msg['label']}: step {msg['step']}/{msg['steps']}, "
                f"{msg['loss']:.3f} bits/dim, ETA {format_seconds(msg['eta'])}")

    shown = threading.Thread(target=printer, daemon=True)
    shown.start()
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    pool = ProcessPoolExecutor(max_workers=max(1, min(n_workers, len(jobs))), mp_context=ctx,
                               initializer=_init_worker, initargs=(threads, queue, stop))
    futures: dict[Future, int] = {pool.submit(train_cell, job): i for i, job in enumerate(jobs)}
    pending = set(futures)
    interrupted = False

    def harvest(done) -> None:
        for f in done:
            i, job = futures[f], jobs[futures[f]]
            if f.cancelled():
                results[i] = {"status": "not started"}
                continue
            try:
                res = results[i] = f.result()
            except Exception as exc:  # the worker died (killed, out of memory): the other cells go on
                res = results[i] = {"status": "failed", "message": f"worker died: {type(exc).__name__}: {exc}"[:300],
                                    "log": "none"}
            what = f"{job['spec']['table']} {job['spec']['label']}"
            if res["status"] == "done":
                log(f"  done   {what} in {res['seconds']:.0f}s")
            elif res["status"] == "interrupted":
                log(f"  paused {what}: {res['message']}")
            else:
                log(f"  FAILED {what}: {res['message']} (traceback: {res['log']})")

    try:
        while pending:
            try:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                harvest(done)
            except KeyboardInterrupt:
                if interrupted:
                    log("second Ctrl-C: killing the workers; their cells resume from the last periodic checkpoint")
                    for p in list(getattr(pool, "_processes", {}).values()):
                        p.kill()
                    break
                interrupted = True
                stop.set()
                for f in pending:
                    f.cancel()
                log("Ctrl-C: the running cells stop at their next step and save a checkpoint "
                    "(Ctrl-C again to kill them)")
    finally:
        pool.shutdown(wait=not interrupted or not pending, cancel_futures=True)
        queue.put(None)
        shown.join(timeout=5)
    if interrupted:
        raise Interrupt()
    return [r if r is not None else {"status": "not started"} for r in results]
