"""Figures and summaries of the contractive-flow table: training curves against steps and wall time, the
convergence comparison (does attention converge faster?), bits/dim under AWGN, parameter counts."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch

from ..models.resflow import ResFlowModel, reference_config
from .plots import _plt, finish

PUBLISHED_COUNTS = {  # counted from the public code (docs/fidelity.md, parameter counts)
    ("resflow_cifar10", "none"): 25_174_233, ("resflow_mnist", "none"): 16_608_693,
    ("iresnet_cifar10", "none"): 25_028_544, ("iresnet_cifar10", "idp"): 25_028_544 + 390,
    ("iresnet_cifar10", "icon"): 25_028_544 + 397,
}


def reference_parameter_counts() -> pd.DataFrame:
    """Our parameter counts of the reference configurations (built on the meta device) beside the public code's."""
    rows = []
    for (name, attention), public in PUBLISHED_COUNTS.items():
        with torch.device("meta"):
            ours = ResFlowModel(reference_config(name, attention=attention)).num_parameters()
        note = "public count includes 104 never-trained roulette parameters (geom_p, lamb)" if name.startswith("resflow") else ""
        rows.append({"configuration": name, "attention": attention, "ours": ours, "public code": public,
                     "difference": ours - public, "note": note})
    for name, att in (("resflow_cifar10", "acf_l2"), ("resflow_cifar10", "acf_dot")):
        with torch.device("meta"):
            ours = ResFlowModel(reference_config(name, attention=att)).num_parameters()
        rows.append({"configuration": name, "attention": att, "ours": ours, "public code": None, "difference": None,
                     "note": "ACF's own configuration differs (idim 128, 8-8-8 blocks)"})
    out = pd.DataFrame(rows)
    for col in ("public code", "difference"):
        out[col] = out[col].astype("Int64")
    return out


def _smooth(v: list[float], k: int = 5) -> list[float]:
    return [sum(v[max(0, i - k + 1): i + 1]) / len(v[max(0, i - k + 1): i + 1]) for i in range(len(v))]


def _curves(df: pd.DataFrame) -> list[tuple[str, str, list[float], list[float], list[float]]]:
    out = []
    for _, r in df.iterrows():
        h = [e for e in r["history"] if math.isfinite(e.get("train_bpd", math.nan))]
        if h:
            out.append((r["dataset"], r["method"], [e["step"] for e in h], [e["seconds"] for e in h],
                        _smooth([e["train_bpd"] for e in h])))
    return out


def plot_training_curves(df: pd.DataFrame, path=None, methods: tuple[str, ...] | None = None, limit: float = 64.0):
    """Smoothed training bits/dim against steps (top) and wall-clock seconds (bottom), one column per data set.
    Curves leaving ``[0, limit]`` (a log-det estimate that exploded: Zha's published attention) are left out
    and named in the panel title."""
    plt = _plt()
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.2 * len(datasets), 6.4), squeeze=False)
    dropped: dict[str, list[str]] = {d: [] for d in datasets}
    for dataset, method, steps, secs, bpd in _curves(df):
        if methods and method not in methods:
            continue
        if not all(0.0 <= v <= limit for v in bpd):
            dropped[dataset].append(method)
            continue
        c = datasets.index(dataset)
        axes[0, c].plot(steps, bpd, label=method)
        axes[1, c].plot(secs, bpd, label=method)
    for c, d in enumerate(datasets):
        axes[0, c].set_title(d + (f" (not shown, bits/dim outside [0, {limit:g}]: {', '.join(dropped[d])})"
                                  if dropped[d] else ""), fontsize=8)
        axes[0, c].set_xlabel("step")
        axes[1, c].set_xlabel("seconds")
        for r in (0, 1):
            axes[r, c].set_ylabel("train bits/dim (smoothed)")
            axes[r, c].legend(fontsize=7)
    fig.tight_layout()
    return finish(fig, path, dpi=110)


def convergence_summary(df: pd.DataFrame, baseline: str = "Residual Flow") -> pd.DataFrame:
    """Per data set: for the baseline and the methods built on it (ACF's claim is about Residual Flow + ACF),
    the first step and second at which the smoothed training bits/dim reaches the baseline's final smoothed
    value, and the method's own final value."""
    rows = []
    curves = [c for c in _curves(df) if c[1].startswith(baseline)]
    for dataset in dict.fromkeys(df["dataset"]):
        base = [c for c in curves if c[0] == dataset and c[1] == baseline]
        if not base:
            continue
        target = base[0][4][-1]
        for _, method, steps, secs, bpd in (c for c in curves if c[0] == dataset):
            hit = next((i for i, v in enumerate(bpd) if v <= target), None)
            rows.append({"dataset": dataset, "method": method, "target_bpd": round(target, 4),
                         "steps_to_target": steps[hit] if hit is not None else None,
                         "seconds_to_target": round(secs[hit], 1) if hit is not None else None,
                         "final_train_bpd": round(bpd[-1], 4), "seconds_per_step": round(secs[-1] / steps[-1], 4)})
    return pd.DataFrame(rows)


def plot_awgn(df: pd.DataFrame, path=None, limit: float = 16.0):
    """Increase of test bits/dim over σ = 0 against the AWGN σ (pixel units), one panel per data set (rows
    with ``|Δ| > limit`` -- an exploded log-det estimate -- are left out and named)."""
    plt = _plt()
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.6), squeeze=False)
    dropped: dict[str, list[str]] = {d: [] for d in datasets}
    for _, r in df.iterrows():
        sig, delta = r.get("awgn_sigma"), r.get("awgn_delta_bpd")
        if isinstance(sig, list) and isinstance(delta, list):
            if all(math.isfinite(v) and abs(v) <= limit for v in delta):
                axes[0, datasets.index(r["dataset"])].plot(sig, delta, "o-", label=r["method"])
            else:
                dropped[r["dataset"]].append(r["method"])
    for c, d in enumerate(datasets):
        axes[0, c].set_title(d + (f" (not shown: {', '.join(dropped[d])})" if dropped[d] else ""), fontsize=8)
        axes[0, c].set_xlabel("AWGN σ (8-bit pixel units)")
        axes[0, c].set_ylabel("Δ test bits/dim vs σ = 0")
        axes[0, c].legend(fontsize=7)
    fig.tight_layout()
    return finish(fig, path, dpi=110)


def awgn_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, one column per σ: the increase of test bits/dim over σ = 0."""
    rows: list[dict[str, Any]] = []
    for _, r in df.iterrows():
        row = {"dataset": r["dataset"], "method": r["method"]}
        sig, delta = r.get("awgn_sigma"), r.get("awgn_delta_bpd")
        if isinstance(sig, list) and isinstance(delta, list):
            row.update({f"Δbpd σ={s:g}": round(v, 4) for s, v in zip(sig, delta)})
        rows.append(row)
    return pd.DataFrame(rows)
