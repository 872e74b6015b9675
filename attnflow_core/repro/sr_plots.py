"""Figures of the super-resolution table: each metric against the sampling temperature, and an
LR | bicubic | SR samples at three temperatures | HR grid (presentation only: reads cell records and example files)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .cells import load_cell
from .paths import results_dir
from .plots import _plt, finish
from .spec import TABLES

METRIC_LABELS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lr_psnr": "LR-PSNR (dB) ↑", "lpips": "LPIPS ↓"}


def temperature_frame(table: str, profile: str, results_root: str | os.PathLike | None = None):
    """One row per (cell, temperature, metric) from the cached cell records (no training, no sampling)."""
    import pandas as pd

    rows = []
    for spec in TABLES[table].cells(profile):
        rec = load_cell(spec, profile, results_root)
        if rec is None:
            continue
        for r in rec["sr_by_temperature"]:
            for m in METRIC_LABELS:
                if r.get(m) is not None:
                    rows.append({"label": spec["label"], "temperature": r["temperature"], "metric": m, "value": r[m]})
    return pd.DataFrame(rows, columns=["label", "temperature", "metric", "value"])


def plot_metrics_vs_temperature(frame, bicubic: dict[str, Any], title: str, path: str | Path | None = None,
                                lpips_note: str = ""):
    """Four panels (PSNR, SSIM, LR-PSNR, LPIPS): one line per model, the bicubic baseline dashed."""
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, (metric, ylabel) in zip(axes, METRIC_LABELS.items()):
        sub = frame[frame["metric"] == metric]
        for label, g in sub.groupby("label", sort=False):
            ax.plot(g["temperature"], g["value"], "o-", ms=3, label=label)
        if bicubic.get(metric) is not None:
            ax.axhline(bicubic[metric], color="grey", ls="--", lw=1, label="bicubic")
        if sub.empty:
            ax.text(0.5, 0.5, "n/a" + ("\n(see the table's note)" if lpips_note else ""), ha="center", va="center",
                    transform=ax.transAxes, fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel("temperature τ")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return finish(fig, path, dpi=120)


def plot_sr_examples(items: list[tuple[str, str | Path]], title: str, path: str | Path | None = None,
                     image_index: int = 0):
    """One row per model: LR (nearest-enlarged) | bicubic | SR at each stored τ | HR (LR, bicubic and HR
    are drawn in the first row only: they are the same for every model)."""
    import torch

    from ..data.resize import imresize

    plt = _plt()
    data = [(label, np.load(p)) for label, p in items]
    if not data:
        raise FileNotFoundError("no SR example files to plot")
    first = data[0][1]
    temps = list(first["temperatures"])
    lr, hr = first["lr"][image_index], first["hr"][image_index]
    scale = hr.shape[-1] // lr.shape[-1]
    big_lr = np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)
    bicubic = imresize(torch.from_numpy(lr), float(scale)).numpy()
    cols = ["LR", "bicubic"] + [f"τ = {t:g}" for t in temps] + ["HR"]
    fig, axes = plt.subplots(len(data), len(cols), figsize=(1.45 * len(cols), 1.5 * len(data)), squeeze=False)
    for r, (label, f) in enumerate(data):
        imgs = [big_lr if r == 0 else None, bicubic if r == 0 else None]
        imgs += [f["sr"][k][image_index] for k in range(len(temps))] + [hr if r == 0 else None]
        for c, img in enumerate(imgs):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if img is None:
                ax.axis("off")
                continue
            ax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest")
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
        axes[r, 2].set_ylabel(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return finish(fig, path, dpi=90)


def example_files(table: str, profile: str, results_root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """``(label, npz path)`` of every cell with a record, in the table's order."""
    out = []
    for spec in TABLES[table].cells(profile):
        rec = load_cell(spec, profile, results_root)
        if rec is not None:
            out.append((spec["label"], results_dir(profile, results_root) / rec["sr_examples"]))
    return out
