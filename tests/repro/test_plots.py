"""The notebook figures: shown exactly once in a notebook (saved, closed, displayed by the helper), colour bars
on heat maps, ablation plots with error bars from the best interval a table has, no seaborn FutureWarning."""
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attnflow_core.repro import plots  # noqa: E402


def _ablation_frame(**extra):
    df = pd.DataFrame({"mask": ["spatial", "channel", "random", "checkerboard"],
                       "bpd": [6.69, 6.70, 6.71, 6.70], "bpd_sem": [0.016, 0.015, 0.017, 0.016],
                       "paper_bpd": [0.99, 0.75, 0.50, 0.39]})
    return df.assign(**extra)


def _jacobian():
    j = torch.tril(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    return j, torch.arange(6), 3


@pytest.fixture
def notebook(monkeypatch):
    """Pretend to run inside a Jupyter kernel and count what the helpers display."""
    shown = []
    monkeypatch.setattr(plots, "_in_notebook", lambda: True)
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, *a, **k: shown.append(obj))
    return shown


@pytest.mark.parametrize("draw", [
    lambda p: plots.plot_masks(4, 4, 0, path=p),
    lambda p: plots.plot_jacobian(*_jacobian(), "J", path=p),
    lambda p: plots.plot_ablation(_ablation_frame(), "mask", "t", path=p, paper_col="paper_bpd"),
], ids=["masks", "jacobian", "ablation"])
def test_a_notebook_figure_is_displayed_exactly_once(tmp_path, notebook, draw):
    """Displayed once by the helper; closed, so the inline backend does not draw it again at the end of the
    cell; ``None`` returned, so a call that ends a cell is not drawn a second time as the cell's value."""
    plt.close("all")
    out = draw(tmp_path / "f.png")
    assert out is None
    assert len(notebook) == 1 and isinstance(notebook[0], matplotlib.figure.Figure)
    assert plt.get_fignums() == []
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_outside_a_notebook_the_closed_figure_is_returned(tmp_path):
    plt.close("all")
    fig = plots.plot_jacobian(*_jacobian(), "J", path=tmp_path / "j.png")
    assert isinstance(fig, matplotlib.figure.Figure) and plt.get_fignums() == []


def test_heat_maps_have_a_colour_bar_with_their_scale():
    fig = plots.plot_jacobian(*_jacobian(), "J")
    bars = [ax for ax in fig.axes if "log" in ax.get_ylabel()]
    assert len(fig.axes) == 2 and len(bars) == 1
    lo, hi = bars[0].get_ylim()
    assert lo == -6 and hi >= 0
    image = fig.axes[0].images[0].get_array()
    assert image.mask[np.triu_indices(6, 1)].all() and not image.mask[np.tril_indices(6)].any()  # zeros: white
    masks = plots.plot_masks(4, 4, 0)
    assert any(ax.get_ylabel().startswith("mask") for ax in masks.axes)


def _errorbar_halfwidths(ax):
    cont = [c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    segs = np.concatenate([c.lines[2][0].get_segments() for c in cont])
    return np.array([abs(s[1, 1] - s[0, 1]) / 2 for s in segs])


def test_ablation_error_bars_are_the_test_set_interval_without_seeds():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the seaborn FutureWarning (palette without hue) is gone
        fig = plots.plot_ablation(_ablation_frame(), "mask", "t", paper_col="paper_bpd")
    ours, paper = fig.axes  # two panels, no twinned axis
    assert np.allclose(_errorbar_halfwidths(ours), 1.96 * np.array([0.016, 0.015, 0.017, 0.016]))
    assert not ours.patches  # points, not bars cut at an arbitrary height
    assert paper.get_ylim()[0] == 0
    assert "1.96 s.e." in fig.texts[0].get_text()


def test_ablation_error_bars_use_the_seed_interval_when_there_are_seeds():
    df = _ablation_frame(bpd_ci95=[0.05, 0.04, 0.03, 0.02], n_seeds=3)
    fig = plots.plot_ablation(df, "mask", "t")
    assert len(fig.axes) == 1
    assert np.allclose(_errorbar_halfwidths(fig.axes[0]), [0.05, 0.04, 0.03, 0.02])
    assert "3 training seeds" in fig.texts[0].get_text()
    one_seed = _ablation_frame(bpd_ci95=np.nan, n_seeds=1)
    assert plots.error_bars(one_seed)[1].startswith("95% interval of the test-set mean")


def test_ablation_with_hue_dodges_the_levels():
    df = pd.DataFrame({"pos": ["pos-1", "pos-2"] * 2, "attention": ["imap"] * 2 + ["itrans"] * 2,
                       "bpd": [6.6, 6.7, 7.0, 6.9], "bpd_sem": [0.01] * 4})
    fig = plots.plot_ablation(df, "pos", "t", hue="attention")
    cont = [c for c in fig.axes[0].containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    xs = sorted(x for c in cont for x in c.lines[0].get_xdata())
    assert len(xs) == 4 and len(set(np.round(xs, 6))) == 4
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["imap", "itrans"]


def test_a_model_that_cannot_sample_leaves_no_open_figure(tmp_path):
    class Broken:
        def to_uint8(self, x):
            return x

        def sample(self, n, temperature):
            raise RuntimeError("no inverse")

    plt.close("all")
    with pytest.raises(RuntimeError):
        plots.save_sample_grid(Broken(), tmp_path / "s.png", (0.7, 1.0), "t", n=4)
    assert plt.get_fignums() == []  # a notebook would otherwise draw a blank figure
