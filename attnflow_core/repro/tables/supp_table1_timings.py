"""Supplementary Table 1: what iMap and iTrans cost on top of the mARFlow backbone (CIFAR-10 rows).

One cell, measured rather than trained (it has no ``train``): the attention benchmark of
:mod:`attnflow_core.repro.timing` for the three models of Table 3 (mARFlow; AttnFlow-iMap and -iTrans with
the attention after the coupling, 5 iTrans heads), timed round-robin in one process. Its record is
cached like any cell's, so the notebook (and nbval in CI) reuses it instead of timing again.
Rows: training-step and per-image test-time (``log_prob`` and sampling) ratios to the backbone beside
the paper's (2.5 / 3 / 5 GPU-days for 100 epochs; 0.48 / 0.50 / 0.61 s per image).

Profiles: *smoke* times Table 3's tiny smoke models (``timing.SCALES["smoke"]``, affine couplings) on
the CPU; *paper*
times the paper's CIFAR-10 model (L3 K4 C96, mixture-logistic couplings, batch 32) on the GPU.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from ...training.config import pick_device
from ..provenance import hardware_label
from ..spec import CellContext, TableSpec, register_table
from ..timing import PAPER_TEST_S, PAPER_TRAIN_DAYS, SCALES, SUPP_VARIANTS, measure_timings, timing_args


class SuppTable1(TableSpec):
    name = "supp_table1_timings"
    description = ("Supp. Table 1: training-step and per-image test-time cost of AttnFlow-iMap / -iTrans "
                   "relative to the mARFlow backbone (timed here, beside the paper's)")
    order = 70
    smoke_note = ("**Smoke timings are not the paper's setting**: a tiny model on a shared CPU; ratios, not "
                  "absolute times, are what compare with the paper's, and even those depend on the scale.")

    def build(self, profile: str) -> list[dict[str, Any]]:
        scale = "smoke" if profile == "smoke" else "paper"
        sc = SCALES[scale]
        return [{"table": self.name, "label": f"attention timings ({scale} scale)", "scale": scale,
                 "device": "cpu" if profile == "smoke" else "auto", "model": dict(sc["model"]),
                 "evaluators": {"timing": {k: sc[k] for k in ("batch", "sample_batch", "warmup", "repeats")}
                                | {"variants": [list(v) for v in SUPP_VARIANTS]}}}]

    def readable_name(self, spec: dict[str, Any]) -> str:
        return f"timings-{spec['scale']}"

    def measure(self, spec: dict[str, Any], ctx: CellContext, data_root: str | None) -> dict[str, Any]:
        # threads: as the caller set them (the driver gives each cell its share of the cores); on a
        # machine shared with other jobs, oversubscribed threads make timings far noisier than one thread
        device = pick_device(spec["device"])
        timing = spec["evaluators"]["timing"]
        t0 = time.perf_counter()
        rows = measure_timings(timing_args(spec["scale"], device, 0, timing["variants"],
                                           **{k: v for k, v in timing.items() if k != "variants"}))
        return {"timings": rows, "hardware": hardware_label(device), "device": str(device),
                "threads": torch.get_num_threads(), "timing_seconds": time.perf_counter() - t0}

    def row(self, spec: dict[str, Any], rec: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for r in rec["timings"]:
            k = r["attention"]
            rows.append({
                "method": r["variant"], "attention": k, "position": r["position"], "heads": r["heads"],
                "params": r["params"], "train_step_ms": round(1e3 * r["train_step_s"], 2),
                "train_step_ratio": round(r["train_step_ratio"], 3), "paper_train_gpu_days": PAPER_TRAIN_DAYS[k],
                "paper_train_ratio": round(PAPER_TRAIN_DAYS[k] / PAPER_TRAIN_DAYS["none"], 3),
                "log_prob_ms_per_image": round(1e3 * r["log_prob_s"] / r["batch"], 3),
                "log_prob_ratio": round(r["log_prob_ratio"], 3),
                "sample_ms_per_image": round(1e3 * r["sample_batch_s"] / r["sample_batch"], 2),
                "sample_ratio": round(r["sample_batch_ratio"], 3), "paper_test_s_per_image": PAPER_TEST_S[k],
                "paper_test_ratio": round(PAPER_TEST_S[k] / PAPER_TEST_S["none"], 3),
                "batch": r["batch"], "sample_batch": r["sample_batch"], "rounds": r["rounds"],
                "scale": spec["scale"], "dataset": "random 8-bit 3×32×32 (timing only)", "train_steps": "n/a",
                "profile": rec["profile"], "hardware": rec["hardware"], "threads": rec["threads"],
                "torch": rec["torch"], "commit": rec["commit"], "code_hash": rec["code_hash"],
                "measured": rec["finished"], "key": rec["key"],
            })
        return rows

    def columns(self) -> list[str]:
        return ["method", "params", "train_step_ms", "train_step_ratio", "paper_train_gpu_days", "paper_train_ratio",
                "log_prob_ms_per_image", "log_prob_ratio", "sample_ms_per_image", "sample_ratio",
                "paper_test_s_per_image", "paper_test_ratio"]

    def note(self, df) -> str:
        r = df.iloc[0]
        return (f"Timed on {r['hardware']}, torch {r['torch']}, commit `{r['commit']}`, "
                f"{r['measured']}; {r['scale']} scale (`attnflow_core.repro.timing.SCALES`), batch {r['batch']}, "
                f"{r['rounds']} rounds, all models timed round-robin in one process; ratios are medians of "
                f"per-round ratios to mARFlow. The paper's training times are GPU-days for 100 epochs (so their "
                f"ratio is a per-step ratio); its test time per image does not say whether it is likelihood "
                f"evaluation or sampling, so both are given.")


SPEC = register_table(SuppTable1())
