"""Figures for the notebooks: the paper's layouts (Fig. 2 masks, Fig. 5 / supp. Fig. 8-9 ablations)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attention.masks import MASK_KINDS, make_mask
from ..core.io import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg") if not _in_notebook() else None
    import matplotlib.pyplot as plt

    return plt


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except Exception:
        return False


def finish(fig, path: str | Path | None = None, dpi: int = 120):
    """Save ``fig`` to ``path`` (if given), close it and, in a notebook, display it here, once.

    Closing keeps the inline backend from drawing the figure again at the end of the cell, and returning
    ``None`` in a notebook keeps a call that ends a cell from drawing it a second time as the cell's value.
    Outside a notebook the (closed, still drawable) figure is returned for inspection.
    """
    if path is not None:
        save_figure(path, fig, dpi=dpi)
    _plt().close(fig)
    if _in_notebook():
        from IPython.display import display

        display(fig)
        return None
    return fig


def plot_masks(channels: int = 4, size: int = 4, seed: int = 0, path: str | Path | None = None):
    """Fig. 2: each mask drawn channel by channel (dark = 1 = masked half x1), with a colour key."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    plt = _plt()
    cmap, norm = ListedColormap(["white", "0.15"]), BoundaryNorm([-0.5, 0.5, 1.5], 2)
    fig, axes = plt.subplots(len(MASK_KINDS), channels, figsize=(1.6 * channels + 0.9, 1.7 * len(MASK_KINDS)),
                             squeeze=False)
    for r, kind in enumerate(MASK_KINDS):
        m = make_mask(kind, channels, size, size, seed).numpy()
        for c in range(channels):
            ax = axes[r, c]
            im = ax.imshow(m[c], cmap=cmap, norm=norm)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(kind, fontsize=9)
            if r == 0:
                ax.set_title(f"channel {c}", fontsize=8)
    bar = fig.colorbar(im, ax=axes, ticks=[0, 1], shrink=0.3, fraction=0.04)
    bar.ax.set_yticklabels(["0: $x_2$", "1: $x_1$"], fontsize=8)
    bar.set_label("mask $M_{c,h,w}$", fontsize=8)
    fig.suptitle("Masks (Fig. 2): dark = masked half $x_1$", fontsize=10)
    return finish(fig, path)


def plot_jacobian(jac: torch.Tensor, order: torch.Tensor, n_masked: int, title: str, path: str | Path | None = None,
                  vmin: float = -6.0):
    r"""Heat map of :math:`\log_{10}|J_{ij}|` with rows/cols reordered as ``[x1; x2]`` (a colour bar gives the
    scale; exact zeros are white, so the zero upper-right block of a block-triangular Jacobian stands out)."""
    plt = _plt()
    j = jac[order][:, order].abs().numpy()
    logj = np.ma.masked_where(j == 0, np.log10(np.where(j == 0, 1.0, j)))
    cmap = plt.get_cmap("magma").with_extremes(bad="white")
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    im = ax.imshow(logj, cmap=cmap, vmin=vmin, vmax=max(0.0, float(np.ceil(logj.max()))) if logj.count() else 0.0,
                   interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, extend="min")
    bar.set_label(r"$\log_{10}|\partial y_i/\partial x_j|$ (white: exactly 0)", fontsize=8)
    ax.axhline(n_masked - 0.5, color="cyan", lw=0.8)
    ax.axvline(n_masked - 0.5, color="cyan", lw=0.8)
    d = j.shape[0]
    ax.set_xticks([(n_masked - 1) / 2, (n_masked + d - 1) / 2], ["$x_1$", "$x_2$"])
    ax.set_yticks([(n_masked - 1) / 2, (n_masked + d - 1) / 2], ["$y_1$", "$y_2$"])
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"input index ({n_masked} masked, then {d - n_masked} free)", fontsize=8)
    ax.set_ylabel("output index", fontsize=8)
    return finish(fig, path)


def error_bars(df, value: str = "bpd") -> tuple[np.ndarray | None, str]:
    """Half-widths of the error bars of ``value`` and what they are, from the best columns a table has:
    ``<value>_ci95`` (half-width of a 95 % interval over training seeds) with ``n_seeds > 1`` on every row,
    else ``1.96 × <value>_sem`` (the test-set standard error of one run: seed-to-seed spread not included)."""
    ci, sem = df.get(f"{value}_ci95"), df.get(f"{value}_sem")
    seeds = df.get("n_seeds")
    if ci is not None and seeds is not None and ci.notna().all() and (seeds.fillna(1) > 1).all():
        n = sorted({int(v) for v in seeds})
        return ci.to_numpy(float), f"95% interval over {'–'.join(map(str, (n[0], n[-1]) if len(n) > 1 else n))} training seeds"
    if sem is not None and sem.notna().any():
        return (1.96 * sem).to_numpy(float), ("95% interval of the test-set mean (±1.96 s.e. over test images) of one "
                                              "training run: seed-to-seed spread not included; the runs share the "
                                              "test images, so their differences are more precise than the bars")
    return None, "no error bars: the table has neither a seed interval nor a standard error"


def plot_ablation(df, x: str, title: str, path: str | Path | None = None, hue: str | None = None,
                  paper_col: str | None = None, order: list[Any] | None = None):
    """Bits/dim per ablation setting as points with error bars (ours; :func:`error_bars` says which), one
    colour per ``hue`` level; the paper's values, where given, in a panel of their own (another data set and
    scale: never on a shared or twinned axis). Points, not bars: the values sit far from 0, where a bar's
    length would mean nothing and a cut bar axis would exaggerate the differences."""
    plt = _plt()
    xs = list(order or dict.fromkeys(df[x]))
    paper = paper_col is not None and paper_col in df and df[paper_col].notna().any()
    fig, axes = plt.subplots(1, 2 if paper else 1, figsize=(8.6 if paper else 5.5, 3.6), squeeze=False)
    ax = axes[0, 0]
    err, what = error_bars(df)
    levels = list(dict.fromkeys(df[hue])) if hue else [None]
    for i, level in enumerate(levels):
        sel = (df[hue] == level).to_numpy() if hue else np.ones(len(df), bool)
        sub = df[sel]
        shift = (i - (len(levels) - 1) / 2) * 0.12
        pos = [xs.index(v) + shift for v in sub[x]]
        ax.errorbar(pos, sub["bpd"], yerr=None if err is None else err[sel], fmt="o", ms=5, capsize=3,
                    color=f"C{i}", label=None if level is None else str(level))
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_xlabel(x)
    ax.set_ylabel("test bits/dim (ours)")
    ax.grid(axis="y", alpha=0.3)
    if hue:
        ax.legend(title=hue, fontsize=8, title_fontsize=8)
    ax.set_title(title, fontsize=9)
    if paper:
        pax = axes[0, 1]
        vals = [df.loc[df[x] == v, paper_col].iloc[0] for v in xs]
        pax.plot(range(len(xs)), vals, "s", color="tab:red")
        pax.set_xticks(range(len(xs)), [str(v) for v in xs])
        pax.set_xlim(-0.5, len(xs) - 0.5)
        pax.set_ylim(0, max(vals) * 1.15)
        pax.set_xlabel(x)
        pax.set_ylabel("bits/dim (paper)")
        pax.grid(axis="y", alpha=0.3)
        pax.set_title("paper (MNIST, L3K2C48; y from 0)", fontsize=9)
    fig.tight_layout()
    fig.text(0.01, -0.03, f"Points, not bars (the y axis of ours does not start at 0). Error bars: {what}.",
             fontsize=7, ha="left", va="top", wrap=True)
    return finish(fig, path)


def save_sample_grid(model, path: str | Path, temperatures: tuple[float, ...], title: str, n: int = 16) -> None:
    """One grid of ``n`` samples per temperature, side by side (seeded). Sampling runs before the figure is
    made, so a model that cannot sample leaves no open (blank) figure behind for a notebook to draw."""
    import math

    from torchvision.utils import make_grid

    plt = _plt()
    torch.manual_seed(0)
    xs = [model.to_uint8(model.sample(n, temperature=t)).float().cpu() / 255.0 for t in temperatures]
    fig, axes = plt.subplots(1, len(temperatures), figsize=(3.2 * len(temperatures), 3.4), squeeze=False)
    for ax, t, x in zip(axes[0], temperatures, xs):
        grid = make_grid(x, nrow=int(math.sqrt(n)), padding=1, pad_value=1.0)
        ax.imshow(grid.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"T = {t}")
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(path, fig, dpi=110)
    plt.close(fig)


def save_image_panels(panels: dict[str, torch.Tensor], path: str | Path, title: str) -> None:
    """One grid of uint8 images ``(N, C, H, W)`` per entry, side by side; an entry holding the same
    tensor as an earlier one is drawn once (e.g. when the best temperature is T = 1)."""
    import math

    from torchvision.utils import make_grid

    plt = _plt()
    uniq: dict[str, torch.Tensor] = {}
    for name, imgs in panels.items():
        if not any(imgs is v for v in uniq.values()):
            uniq[name] = imgs
    fig, axes = plt.subplots(1, len(uniq), figsize=(3.4 * len(uniq), 3.7), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], uniq.items()):
        grid = make_grid(imgs.float() / 255.0, nrow=int(math.ceil(math.sqrt(len(imgs)))), padding=1, pad_value=1.0)
        ax.imshow(grid.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(path, fig, dpi=110)
    plt.close(fig)


def tile_images(files: list[tuple[str, str | Path]], path: str | Path, title: str, cols: int = 2):
    """Saved pictures (``(caption, file)``), tiled into one figure (e.g. every row's sample grids)."""
    import matplotlib.image as mpimg

    plt = _plt()
    rows = max(1, -(-len(files) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (caption, f) in zip(axes.flat, files):
        ax.imshow(mpimg.imread(str(f)))
        ax.set_title(caption, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return finish(fig, path, dpi=110)
