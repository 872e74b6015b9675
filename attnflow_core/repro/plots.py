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


def plot_masks(channels: int = 4, size: int = 4, seed: int = 0, path: str | Path | None = None):
    """Fig. 2: each mask drawn channel by channel (dark = masked half x1)."""
    plt = _plt()
    fig, axes = plt.subplots(len(MASK_KINDS), channels, figsize=(1.6 * channels, 1.7 * len(MASK_KINDS)))
    for r, kind in enumerate(MASK_KINDS):
        m = make_mask(kind, channels, size, size, seed).numpy()
        for c in range(channels):
            ax = axes[r, c]
            ax.imshow(m[c], cmap="Greys", vmin=0, vmax=1.4)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(kind, fontsize=9)
            if r == 0:
                ax.set_title(f"channel {c}", fontsize=8)
    fig.suptitle("Masks (Fig. 2): dark = masked half $x_1$", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(path, fig, dpi=120)
    return fig


def plot_jacobian(jac: torch.Tensor, order: torch.Tensor, n_masked: int, title: str, path: str | Path | None = None):
    """|J| with rows/cols reordered as [x1; x2]: the upper-right block is zero (block triangular)."""
    plt = _plt()
    j = jac[order][:, order].abs().numpy()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.imshow(np.log10(j + 1e-12), cmap="magma", vmin=-6)
    ax.axhline(n_masked - 0.5, color="cyan", lw=0.8)
    ax.axvline(n_masked - 0.5, color="cyan", lw=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("input index ([x1 | x2])")
    ax.set_ylabel("output index ([y1 | y2])")
    if path is not None:
        save_figure(path, fig, dpi=120)
    return fig


def plot_ablation(df, x: str, title: str, path: str | Path | None = None, hue: str | None = None,
                  paper_col: str | None = None, order: list[Any] | None = None):
    """Bits/dim per ablation setting as bars (ours), with the paper's values as markers where given."""
    import seaborn as sns

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.barplot(data=df, x=x, y="bpd", hue=hue, order=order, ax=ax, palette="crest", errorbar=None)
    lo = df["bpd"].min()
    if paper_col and df[paper_col].notna().any():
        xs = order or list(dict.fromkeys(df[x]))
        vals = [df.loc[df[x] == v, paper_col].iloc[0] for v in xs]
        ax2 = ax.twinx()
        ax2.plot(range(len(xs)), vals, "o--", color="tab:red", label="paper (MNIST, L3K2C48)")
        ax2.set_ylabel("paper bits/dim", color="tab:red")
        ax2.legend(loc="upper right", fontsize=8)
    ax.set_ylim(max(0.0, lo - 0.5), df["bpd"].max() + 0.3)
    ax.set_ylabel("test bits/dim (ours)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(path, fig, dpi=120)
    return fig


def save_sample_grid(model, path: str | Path, temperatures: tuple[float, ...], title: str, n: int = 16) -> None:
    """One grid of ``n`` samples per temperature, side by side (seeded)."""
    import math

    from torchvision.utils import make_grid

    plt = _plt()
    torch.manual_seed(0)
    fig, axes = plt.subplots(1, len(temperatures), figsize=(3.2 * len(temperatures), 3.4), squeeze=False)
    for ax, t in zip(axes[0], temperatures):
        x = model.to_uint8(model.sample(n, temperature=t)).float().cpu() / 255.0
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
    save_figure(path, fig, dpi=110)
    return fig
