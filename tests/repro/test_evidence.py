"""The statistics of a comparison over seeds: the t-interval against a hand computation and by its coverage,
pairing on seed (order-free, unpaired seeds named, diverged pairs dropped and counted), the verdict rule with
its seed-noise clause, the claims table, and the validation-curve figure."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from attnflow_core.core.errors import AttnflowError  # noqa: E402
from attnflow_core.repro import evidence as ev  # noqa: E402

BASE = [1.00, 1.20, 1.10]  # between-seed SD 0.1


def _rows(method, values, seeds=(0, 1, 2), diverged=None):
    out = pd.DataFrame({"method": method, "seed": list(seeds), "bpd": values})
    return out.assign(diverged=diverged) if diverged is not None else out


def _table():
    b = np.array(BASE)
    return pd.concat([
        _rows("base", b),
        _rows("better", b + [-0.10, -0.12, -0.09]),  # diff -0.103 ± 0.038: excludes 0
        _rows("same", b + [0.05, -0.04, 0.01]),  # diff 0.007, interval contains 0
        _rows("broken", [0.9, math.nan, 1.0], diverged=[False, "NonFiniteError: loss", False]),
    ], ignore_index=True)


def test_t_interval_matches_a_hand_computation():
    iv = ev.t_interval([1, 2, 3, 4])
    sd = math.sqrt(5 / 3)  # sum of squares 5, n - 1 = 3
    t = 3.182446305284263  # t_{0.975, 3} from tables
    assert iv.n == 4 and iv.mean == 2.5
    assert iv.sd == pytest.approx(1.2909944, abs=1e-7)
    assert iv.half_width == pytest.approx(t * sd / 2, rel=1e-12)
    assert iv.half_width == pytest.approx(2.0542603, abs=1e-7)
    assert (iv.low, iv.high) == pytest.approx((2.5 - iv.half_width, 2.5 + iv.half_width))
    assert str(iv) == "2.500 ± 2.054 (n=4)"
    assert ev.t_interval([1, 2, 3, 4], confidence=0.99).half_width > iv.half_width


def test_one_value_has_no_interval_and_says_so():
    iv = ev.t_interval([0.612])
    assert iv.n == 1 and iv.mean == 0.612
    assert math.isnan(iv.sd) and math.isnan(iv.half_width) and not iv.excludes_zero()
    assert iv.format() == "0.612 (n=1: no interval)"


def test_nan_is_refused_unless_dropped_and_counted():
    with pytest.raises(AttnflowError, match="dropna"):
        ev.t_interval([1.0, math.nan, 2.0])
    with pytest.raises(AttnflowError, match="not finite"):
        ev.t_interval([1.0, math.inf])
    iv = ev.t_interval([1.0, math.nan, 2.0, 3.0], dropna=True)
    assert (iv.n, iv.n_dropped, iv.mean) == (3, 1, 2.0)
    with pytest.raises(AttnflowError, match="no finite"):
        ev.t_interval([math.nan], dropna=True)


@pytest.mark.parametrize("n", [3, 5])
def test_the_interval_covers_the_true_mean_95_percent_of_the_time(n):
    """2000 experiments of n normal differences with mean 0: the t-interval covers 0 in 95 % ± 1.5 %; a z
    interval (1.96 s / sqrt n) on the same samples covers far less (~83 % for n = 3), so this test can fail."""
    rng = np.random.default_rng(1234 + n)
    samples = rng.normal(0.0, 0.7, size=(2000, n))
    covered = np.mean([ev.t_interval(x).low <= 0 <= ev.t_interval(x).high for x in samples])
    assert abs(covered - 0.95) <= 0.015, covered
    z_half = 1.959964 * samples.std(axis=1, ddof=1) / math.sqrt(n)
    z_cover = np.mean(np.abs(samples.mean(axis=1)) <= z_half)
    assert z_cover < 0.935, z_cover


def test_seed_summary_per_method():
    s = ev.seed_summary(_table()).set_index("method")
    base = ev.t_interval(BASE)
    assert list(s.index) == ["base", "better", "same", "broken"]
    assert s.loc["base", "n"] == 3 and s.loc["base", "n_diverged"] == 0
    assert s.loc["base", ["mean", "sd", "ci95", "min", "max"]].tolist() == pytest.approx(
        [base.mean, 0.1, base.half_width, 1.0, 1.2])
    assert s.loc["base", "bpd"] == f"1.100 ± {base.half_width:.3f} (n=3)"
    assert s.loc["broken", "n"] == 2 and s.loc["broken", "n_diverged"] == 1
    assert s.loc["broken", "bpd"].endswith("(n=2), 1 diverged")
    dead = ev.seed_summary(_rows("x", [math.nan, math.nan], seeds=(0, 1))).iloc[0]
    assert dead["n"] == 0 and dead["n_diverged"] == 2 and dead["bpd"] == "all 2 diverged"


def test_pairs_on_seed_whatever_the_row_order():
    df = _table()
    p = ev.paired_difference(df, "better", "base")
    q = ev.paired_difference(df.sample(frac=1.0, random_state=3), "better", "base")
    assert p.seeds == q.seeds == (0, 1, 2)
    assert q.differences == pytest.approx((-0.10, -0.12, -0.09))
    assert q.interval.mean == pytest.approx(-0.31 / 3) and q.n_pairs == 3
    assert q.sd_baseline == pytest.approx(0.1) and q.seed_sd == pytest.approx(max(q.sd_method, 0.1))


def test_a_seed_only_one_side_has_is_named():
    df = pd.concat([_table(), _rows("extra", [1.0, 1.1, 1.2], seeds=(0, 1, 7))], ignore_index=True)
    with pytest.raises(AttnflowError, match=r"only in 'extra': \[7\], only in 'base': \[2\]"):
        ev.paired_difference(df, "extra", "base")
    p = ev.paired_difference(df, "extra", "base", allow_unpaired=True)
    assert p.seeds == (0, 1) and p.unpaired == (2, 7)
    with pytest.raises(AttnflowError, match="nosuch"):
        ev.paired_difference(df, "nosuch", "base")
    with pytest.raises(AttnflowError, match="several rows"):
        ev.paired_difference(pd.concat([df, _rows("base", [1.0], seeds=(0,))]), "better", "base")


def test_a_diverged_pair_is_dropped_and_counted():
    p = ev.paired_difference(_table(), "broken", "base")
    assert p.seeds == (0, 2) and p.dropped == (1,) and p.n_pairs == 2 and p.n_seeds == 3
    assert p.differences == pytest.approx((-0.1, -0.1))
    v = ev.verdict(p)
    assert "1 pair(s) dropped, diverged: seed(s) [1]" in v.reason
    # the flag alone decides too (a finite value of a run marked diverged is not used)
    df = _table()
    df.loc[(df.method == "better") & (df.seed == 2), "diverged"] = True
    assert ev.paired_difference(df, "better", "base").dropped == (2,)


def test_verdict_supports_contradicts_inconclusive():
    df = _table()
    better = ev.paired_difference(df, "better", "base")
    assert ev.verdict(better, "lower") == "supports"
    assert ev.verdict(better, "higher") == "contradicts"
    assert ev.verdict(ev.paired_difference(df, "base", "better"), "lower") == "contradicts"
    same = ev.verdict(ev.paired_difference(df, "same", "base"), "lower", resolve=1.0)
    assert same == "inconclusive" and "contains 0" in same.reason and same.label == "inconclusive"
    assert isinstance(same.label, str) and str(same) == "inconclusive"


def test_seed_noise_above_a_third_of_the_gap_is_inconclusive_unless_the_interval_decides():
    df = _table()
    same = ev.paired_difference(df, "same", "base")
    v = ev.verdict(same, "lower", resolve=0.13)  # seed SD 0.1 > 0.13 / 3
    assert v == "inconclusive" and v.reason.startswith("seed SD 0.1 > 1/3 of the difference to resolve 0.13")
    assert "seed SD" not in ev.verdict(same, "lower", resolve=0.31).reason  # 0.1 < 0.31 / 3
    # the exception: a paired interval that excludes 0 decides even with noisy seeds, and says so
    v = ev.verdict(ev.paired_difference(df, "better", "base"), "lower", resolve=0.13)
    assert v == "supports" and "seed SD 0.1 > 1/3" in v.reason and "excludes 0" in v.reason
    with pytest.raises(AttnflowError, match="resolve"):
        ev.verdict(same, resolve=0.0)
    with pytest.raises(AttnflowError, match="expected"):
        ev.verdict(same, expected="smaller")


def test_fewer_than_two_pairs_is_not_applicable():
    one = pd.concat([_rows("a", [0.5], seeds=(0,)), _rows("b", [0.7], seeds=(0,))])
    v = ev.verdict(ev.paired_difference(one, "a", "b"), resolve=0.13)
    assert v == "n/a" and v.reason == "one seed: a pipeline check, no evidence"
    two = pd.concat([_rows("a", [0.5, math.nan], seeds=(0, 1)), _rows("b", [0.7, 0.8], seeds=(0, 1))])
    v = ev.verdict(ev.paired_difference(two, "a", "b"))
    assert v == "n/a" and "1 finished pair" in v.reason and "seed(s) [1]" in v.reason


def test_claims_table_gives_the_expected_verdicts():
    claims = [ev.Claim("attention helps", "better", "base", "lower", 0.43, 0.56),
              ev.Claim("no effect claimed lower", "same", "base", "lower", 0.43, 0.56),
              ev.Claim("wrong way", "base", "better", "lower", resolve=0.5),
              ev.Claim("with a diverged seed", "broken", "base", "lower")]
    t = ev.claims_table(_table(), claims)
    assert t["verdict"].tolist() == ["supports", "inconclusive", "contradicts", "supports"]
    assert t["n pairs"].tolist() == [3, 3, 3, 2]
    assert t.loc[0, "paper diff"] == pytest.approx(-0.13)
    assert "seed SD 0.1 > 1/3 of the difference to resolve 0.13" in t.loc[1, "reason"]
    assert t.loc[0, "diff"] == pytest.approx(-0.31 / 3) and t.loc[0, "diff low"] < t.loc[0, "diff high"] < 0
    assert t.loc[3, "ours: method"].endswith("(n=2), 1 diverged")
    assert t.loc[0, "between-seed SD"] == pytest.approx(0.1, abs=0.01)
    md = ev.claims_markdown(t)
    assert md.count("\n") == 5 and "| claim" in md and "inconclusive: seed SD" in md and "0.430 vs 0.560" in md
    smoke = pd.concat([_rows("better", [0.5], seeds=(0,)), _rows("base", [0.6], seeds=(0,))])
    one = ev.claims_table(smoke, claims[:1])
    assert one.loc[0, "verdict"] == "n/a" and "n/a: one seed: a pipeline check" in ev.claims_markdown(one)


def test_ranking_becomes_consecutive_claims():
    names = ["checkerboard", "random", "channel", "spatial"]
    cs = ev.ranking_claims(names, [0.39, 0.50, 0.75, 0.99], method_of=lambda n: f"mask={n}")
    assert [(c.name, c.method, c.baseline, c.expected) for c in cs] == [
        ("checkerboard < random", "mask=checkerboard", "mask=random", "lower"),
        ("random < channel", "mask=random", "mask=channel", "lower"),
        ("channel < spatial", "mask=channel", "mask=spatial", "lower")]
    assert [c.gap for c in cs] == pytest.approx([0.11, 0.25, 0.24])
    assert ev.ranking_claims(names[:2], {"random": 0.5})[0].gap is None
    with pytest.raises(AttnflowError, match="3 paper values for 4 names"):
        ev.ranking_claims(names, [0.1, 0.2, 0.3])
    with pytest.raises(AttnflowError, match="expected"):
        ev.Claim("x", "a", "b", "less")


def _rec(method, seed, curve):
    return {"label": f"{method}/s{seed}", "spec": {"method": method, "train": {"seed": seed}},
            "val_curve": [{"step": s, "val_bpd": v} for s, v in curve]}


def test_val_curves_one_line_and_band_per_method(tmp_path):
    plt.close("all")
    recs = [_rec("A", 0, [(100, 3.0), (200, 2.0), (300, 1.5)]),
            _rec("A", 1, [(100, 3.2), (200, 2.4), (250, 9.0), (300, 1.7)]),  # an extra step: not in all seeds
            _rec("A", 2, [(100, 3.1), (200, 2.2), (300, 1.6)]),
            _rec("B", 0, [(100, 4.0), (200, 3.0)]), _rec("B", 1, [(100, 4.4), (200, float("nan"))]),
            {"label": "smoke", "spec": {"train": {"seed": 0}}}]  # no curve: skipped
    fig = ev.plot_val_curves(recs, path=tmp_path / "val.png", title="t")
    assert (tmp_path / "val.png").stat().st_size > 1000 and plt.get_fignums() == []
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # one mean line and one fill_between band each
    a, b = ax.lines
    assert a.get_xdata().tolist() == [100, 200, 300] and a.get_ydata() == pytest.approx([3.1, 2.2, 1.6])
    assert b.get_xdata().tolist() == [100] and b.get_ydata() == pytest.approx([4.2])  # NaN point left out
    assert "mean of 3 seeds" in a.get_label() and "min–max over seeds" in ax.get_title()
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(1.5) and band.max() == pytest.approx(3.2)


def test_val_curves_without_curves_draw_nothing(tmp_path):
    plt.close("all")
    recs = [{"label": "m/s0", "spec": {"method": "m"}}, {"label": "m/s1", "spec": {}, "val_curve": []}]
    assert ev.plot_val_curves(recs, path=tmp_path / "none.png") is None
    assert plt.get_fignums() == [] and not (tmp_path / "none.png").exists()
