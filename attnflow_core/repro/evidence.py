r"""The statistics of an honest comparison over seeds: t-intervals, paired differences, verdicts on claims.

Presentation only (it summarises finished table rows and cell records; nothing here trains). A table row is
one trained cell: ``method`` (the compared thing), ``seed``, ``bpd`` (test bits/dim at the validation-selected
checkpoint), optionally ``diverged`` (bool or reason string; a diverged cell has ``bpd`` NaN).

A row *failed* when its ``diverged`` flag is set or its metric is not finite; failed rows never enter a
mean. They are counted and said, never dropped in silence: :func:`t_interval` refuses non-finite values
unless told ``dropna=True`` (and records how many it dropped).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import AttnflowError
from .plots import _plt, finish

EXPECTED = ("lower", "higher")
ONE_SEED = "one seed: a pipeline check, no evidence"


@dataclass(frozen=True)
class Interval:
    r"""A two-sided Student-t confidence interval for the mean of ``n`` values :math:`x_1..x_n`:

    .. math:: \bar x \pm t_{(1+c)/2,\,n-1}\, s/\sqrt n, \qquad s^2 = \tfrac{1}{n-1}\sum_i (x_i-\bar x)^2,

    exact for normal values of unknown variance (with ``n = 3`` a z quantile would cover only ~83 % of the
    time instead of 95 %). For ``n = 1`` there is no spread: ``sd`` and ``half_width`` are NaN, and the
    formatted interval says so."""

    mean: float
    half_width: float
    low: float
    high: float
    n: int
    sd: float
    confidence: float = 0.95
    n_dropped: int = 0

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)  # False for NaN bounds (n = 1)

    def format(self, digits: int = 3, brackets: bool = False) -> str:
        """``0.612 ± 0.031 (n=3)``, or ``-0.120 [-0.200, -0.040] (n=3)`` with ``brackets``."""
        m = f"{self.mean:.{digits}f}"
        if self.n < 2:
            return f"{m} (n={self.n}: no interval)"
        spread = (f"[{self.low:.{digits}f}, {self.high:.{digits}f}]" if brackets
                  else f"± {self.half_width:.{digits}f}")
        return f"{m} {spread} (n={self.n})"

    def __str__(self) -> str:
        return self.format()


def t_interval(values: Iterable[float], confidence: float = 0.95, dropna: bool = False) -> Interval:
    r"""The t-interval (see :class:`Interval`) of ``values``. Non-finite values raise an :class:`AttnflowError`
    unless ``dropna=True``, which drops them and records their count in ``Interval.n_dropped``."""
    from scipy import stats

    x = np.asarray(list(values), dtype=np.float64).ravel()
    if not 0.0 < confidence < 1.0:
        raise AttnflowError(f"t_interval: confidence must lie in (0, 1), got {confidence}")
    bad = ~np.isfinite(x)
    if bad.any() and not dropna:
        raise AttnflowError(f"t_interval: {int(bad.sum())} of {x.size} values are not finite ({x[bad].tolist()}); "
                            "pass dropna=True to drop them (the count is recorded)")
    if (n := int((~bad).sum())) == 0:
        raise AttnflowError("t_interval: no finite value to summarise")
    x, mean = x[~bad], float(x[~bad].mean())
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    return Interval(mean, half, mean - half, mean + half, n, sd, confidence, int(bad.sum()))


def is_diverged(flag: Any) -> bool:
    """A ``diverged`` entry read as a bool: True, or a reason string (not 'False'/'' as a CSV writes)."""
    if isinstance(flag, str):
        return flag.strip().lower() not in ("", "false", "0", "none", "nan")
    return False if flag is None or pd.isna(flag) else bool(flag)


def _failed(rows: pd.DataFrame, metric: str) -> np.ndarray:
    bad = ~np.isfinite(rows[metric].to_numpy(dtype=np.float64))
    if "diverged" in rows:
        bad |= np.array([is_diverged(v) for v in rows["diverged"]], dtype=bool)
    return bad


def _ours(rows: pd.DataFrame, metric: str, digits: int, confidence: float = 0.95) -> str:
    """``0.612 ± 0.031 (n=3)`` over the finished rows, ``, 1 diverged`` after it; ``all 3 diverged``."""
    bad = _failed(rows, metric)
    if bad.all():
        return f"all {int(bad.sum())} diverged"
    return (t_interval(rows[metric][~bad], confidence).format(digits)
            + (f", {int(bad.sum())} diverged" if bad.any() else ""))


def _need(df: pd.DataFrame, *cols: str) -> None:
    if missing := [c for c in cols if c not in df.columns]:
        raise AttnflowError(f"table rows lack column(s) {missing}; they have {list(df.columns)}")


def seed_summary(df: pd.DataFrame, metric: str = "bpd", by: str = "method", confidence: float = 0.95,
                 digits: int = 3) -> pd.DataFrame:
    """One row per ``by`` value (in order of appearance): ``n`` finished seeds, ``n_diverged`` (failed rows,
    left out), ``mean``, ``sd`` (between seeds), ``ci95`` (t half width), ``low``, ``high``, ``min``, ``max``
    and the formatted ``<metric>`` column, e.g. ``0.612 ± 0.031 (n=3)``."""
    _need(df, metric, by)
    rows = []
    for name, sub in df.groupby(by, sort=False):
        bad = _failed(sub, metric)
        ok = sub[metric].to_numpy(dtype=np.float64)[~bad]
        iv = t_interval(ok, confidence) if ok.size else Interval(*[math.nan] * 4, 0, math.nan)
        rows.append({by: name, "n": iv.n, "n_diverged": int(bad.sum()), "mean": iv.mean, "sd": iv.sd,
                     "ci95": iv.half_width, "low": iv.low, "high": iv.high, "min": np.min(ok, initial=np.inf),
                     "max": np.max(ok, initial=-np.inf), metric: _ours(sub, metric, digits, confidence)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Paired:
    r"""Per-seed differences :math:`d_s = m_s - b_s` (method minus baseline) over the seeds ``s`` both have
    finished, and their t-interval: the seed's effect (data order, initialisation) cancels in :math:`d_s`, so
    the interval is that of the mean of the :math:`d_s`, not of two independent means. ``dropped``: seeds where
    either side failed; ``unpaired``: seeds only one side has (only with ``allow_unpaired``). ``sd_method`` /
    ``sd_baseline``: each method's between-seed SD over all its finished seeds."""

    method: str
    baseline: str
    metric: str
    seeds: tuple
    differences: tuple
    interval: Interval | None
    sd_method: float
    sd_baseline: float
    dropped: tuple = ()
    unpaired: tuple = ()
    n_seeds: int = 0  # seeds both sides have, dropped ones included

    @property
    def n_pairs(self) -> int:
        return len(self.differences)

    @property
    def seed_sd(self) -> float:
        """The between-seed SD a verdict is held against: the larger of the two methods' SDs."""
        sds = [s for s in (self.sd_method, self.sd_baseline) if math.isfinite(s)]
        return max(sds) if sds else math.nan


def _side(df: pd.DataFrame, by: str, name: str, pair_on: str) -> pd.DataFrame:
    sub = df[df[by] == name]
    if sub.empty:
        raise AttnflowError(f"no rows with {by} == {name!r}; the table has {list(dict.fromkeys(df[by]))}")
    dup = sorted(set(sub[pair_on][sub[pair_on].duplicated()]))
    if dup:
        raise AttnflowError(f"{name!r} has several rows for {pair_on} {dup}: cannot pair them")
    return sub.set_index(pair_on)


def paired_difference(df: pd.DataFrame, method: str, baseline: str, metric: str = "bpd", pair_on: str = "seed",
                      by: str = "method", allow_unpaired: bool = False, confidence: float = 0.95) -> Paired:
    """Method minus baseline, paired on ``pair_on`` (see :class:`Paired`). A seed only one side has is an
    error naming it, unless ``allow_unpaired=True`` (then it is left out and listed in ``unpaired``)."""
    _need(df, metric, pair_on, by)
    a, b = _side(df, by, method, pair_on), _side(df, by, baseline, pair_on)
    unpaired = tuple(sorted(set(a.index) ^ set(b.index)))
    if unpaired and not allow_unpaired:
        raise AttnflowError(f"{pair_on}s only in {method!r}: {sorted(set(a.index) - set(b.index))}, only in "
                            f"{baseline!r}: {sorted(set(b.index) - set(a.index))}; pass allow_unpaired=True "
                            "to compare on the common ones")
    common = sorted(set(a.index) & set(b.index))
    fa = pd.Series(_failed(a, metric), index=a.index)
    fb = pd.Series(_failed(b, metric), index=b.index)
    dropped = tuple(s for s in common if fa[s] or fb[s])
    seeds = tuple(s for s in common if s not in dropped)
    diffs = tuple(float(a.at[s, metric] - b.at[s, metric]) for s in seeds)
    ok = [side[metric].to_numpy(dtype=np.float64)[~f.to_numpy()] for side, f in ((a, fa), (b, fb))]
    sds = [float(x.std(ddof=1)) if x.size > 1 else math.nan for x in ok]
    return Paired(method, baseline, metric, seeds, diffs, t_interval(diffs, confidence) if diffs else None,
                  *sds, dropped, unpaired, len(common))


class Verdict(str):
    """A verdict label ('supports', 'contradicts', 'inconclusive', 'n/a'; compares equal to it) with ``.reason``."""

    def __new__(cls, label: str, reason: str = ""):
        obj = super().__new__(cls, label)
        obj.reason = reason
        return obj

    @property
    def label(self) -> str:
        return str.__str__(self)


def verdict(paired: Paired, expected: str = "lower", resolve: float | None = None) -> Verdict:
    r"""Does the paired comparison support the claim "method's metric is ``expected`` than baseline's"?

    With :math:`[l, h]` the t-interval of the mean paired difference :math:`\bar d` (method − baseline) and
    ``expected = "lower"``: :math:`h < 0` → *supports*, :math:`l > 0` → *contradicts*, :math:`0 \in [l, h]`
    → *inconclusive* (mirrored for ``"higher"``); fewer than 2 pairs → *n/a* (no interval).

    ``resolve`` is the difference the table is meant to resolve (by default in :func:`claims_table` the
    paper's gap). When the interval contains 0 and the between-seed SD :math:`\sigma` (the larger of the two
    methods') exceeds ``resolve / 3``, the reason says so: with that much seed noise the run (too few steps,
    too few seeds) could not have resolved the difference, so "inconclusive" says nothing about the claim.
    When the interval excludes 0 the interval decides even if :math:`\sigma >` ``resolve / 3``: a
    significant paired difference is evidence even when seeds are noisy (the pairing cancels the seed's
    effect); the reason then notes the noise.
    """
    if expected not in EXPECTED:
        raise AttnflowError(f"verdict: expected must be one of {EXPECTED}, got {expected!r}")
    if resolve is not None and not (math.isfinite(resolve) and resolve > 0):
        raise AttnflowError(f"verdict: resolve must be a positive difference, got {resolve}")
    drop = (f"; {len(paired.dropped)} pair(s) dropped, diverged: seed(s) {list(paired.dropped)}"
            if paired.dropped else "")
    if paired.n_pairs < 2:
        if paired.n_pairs == 1 and paired.n_seeds == 1:
            return Verdict("n/a", ONE_SEED)
        return Verdict("n/a", f"{paired.n_pairs} finished pair(s): no interval{drop}")
    iv, sd = paired.interval, paired.seed_sd
    noisy = resolve is not None and math.isfinite(sd) and sd > resolve / 3
    noise = f"seed SD {sd:.3g} > 1/3 of the difference to resolve {resolve:.3g}" if noisy else ""
    diff = f"paired diff {iv.format(brackets=True)}"
    if iv.excludes_zero():
        label = "supports" if (iv.high < 0) == (expected == "lower") else "contradicts"
        return Verdict(label, f"{diff} excludes 0" + (f" ({noise}, but the pairing resolves it)" if noisy else "")
                       + drop)
    return Verdict("inconclusive", (f"{noise} ({diff} contains 0)" if noisy else f"{diff} contains 0") + drop)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``method``'s metric is ``expected`` ('lower' / 'higher') than ``baseline``'s.
    ``paper_method`` / ``paper_baseline``: the paper's values (or None); ``resolve``: the difference the
    table must resolve, by default the paper's gap ``|paper_method - paper_baseline|``."""

    name: str
    method: str
    baseline: str
    expected: str = "lower"
    paper_method: float | None = None
    paper_baseline: float | None = None
    resolve: float | None = None

    def __post_init__(self):
        if self.expected not in EXPECTED:
            raise AttnflowError(f"claim {self.name!r}: expected must be one of {EXPECTED}, got {self.expected!r}")

    @property
    def paper_diff(self) -> float | None:
        return None if None in (self.paper_method, self.paper_baseline) else self.paper_method - self.paper_baseline

    @property
    def gap(self) -> float | None:
        return self.resolve if self.resolve is not None else (abs(self.paper_diff) if self.paper_diff else None)


def ranking_claims(names_in_order: Sequence[str], paper_values: Mapping[str, float] | Sequence[float] | None = None,
                   method_of: Callable[[str], str] = lambda name: name, expected: str = "lower") -> list[Claim]:
    """A ranking (e.g. the mask ablation's checkerboard < random < channel < spatial) as consecutive pairwise
    claims: ``names[i]`` is ``expected`` than ``names[i+1]``. ``paper_values``: per name (mapping, or a sequence
    aligned with the names); ``method_of`` maps a name to the table's method (e.g. ``lambda n: f"mask={n}"``)."""
    names = list(names_in_order)
    if len(names) < 2:
        raise AttnflowError(f"ranking_claims: a ranking needs at least 2 names, got {names}")
    if paper_values is not None and not isinstance(paper_values, Mapping):
        if len(paper_values) != len(names):  # a sequence aligned with the names
            raise AttnflowError(f"ranking_claims: {len(paper_values)} paper values for {len(names)} names")
        paper_values = dict(zip(names, paper_values))
    pv = paper_values or {}
    sign = "<" if expected == "lower" else ">"
    return [Claim(f"{a} {sign} {b}", method_of(a), method_of(b), expected, pv.get(a), pv.get(b))
            for a, b in zip(names, names[1:])]


def claims_table(df: pd.DataFrame, claims: Iterable[Claim], metric: str = "bpd", by: str = "method",
                 pair_on: str = "seed", allow_unpaired: bool = False, digits: int = 3) -> pd.DataFrame:
    """One row per claim: our values of both sides (mean ± 95 % t half width over finished seeds), the paired
    difference with its interval, the number of pairs, the between-seed SD, the paper's values and difference,
    and the :func:`verdict` (label and reason) with ``resolve`` = the claim's gap. Numeric ``diff`` /
    ``diff low`` / ``diff high`` columns come along for plots."""
    rows = []
    for c in claims:
        p = paired_difference(df, c.method, c.baseline, metric, pair_on, by, allow_unpaired)
        v = verdict(p, c.expected, c.gap)
        iv = p.interval
        mid, lo, hi = (iv.mean, iv.low, iv.high) if iv else (math.nan,) * 3
        rows.append({
            "claim": c.name, "method": c.method, "baseline": c.baseline,
            "ours: method": _ours(df[df[by] == c.method], metric, digits),
            "ours: baseline": _ours(df[df[by] == c.baseline], metric, digits),
            "paired diff": iv.format(digits, brackets=True) if iv else "no pair",
            "n pairs": p.n_pairs, "between-seed SD": p.seed_sd,
            "paper method": c.paper_method, "paper baseline": c.paper_baseline, "paper diff": c.paper_diff,
            "verdict": v.label, "reason": v.reason,
            "diff": mid, "diff low": lo, "diff high": hi})
    return pd.DataFrame(rows)


def claims_markdown(claims_df: pd.DataFrame, digits: int = 3) -> str:
    """A compact markdown table of :func:`claims_table` for results READMEs; the reason follows the verdict
    where it is not a clear 'supports' / 'contradicts' (n/a, inconclusive)."""
    def num(v):  # None / NaN -> dash
        return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    view = pd.DataFrame({
        "claim": claims_df["claim"], "ours: method": claims_df["ours: method"],
        "ours: baseline": claims_df["ours: baseline"], "paired diff": claims_df["paired diff"],
        "pairs": claims_df["n pairs"], "seed SD": [num(v) for v in claims_df["between-seed SD"]],
        "paper": [f"{num(m)} vs {num(b)}" for m, b in zip(claims_df["paper method"], claims_df["paper baseline"])],
        "verdict": [lab if lab in ("supports", "contradicts") else f"{lab}: {r}"
                    for lab, r in zip(claims_df["verdict"], claims_df["reason"])]})
    return view.to_markdown(index=False, disable_numparse=True)  # keep "0.100" as written


def _curve(rec: Mapping[str, Any]) -> dict[int, float]:
    pts = rec.get("val_curve") or []
    return {int(p["step"]): float(p["val_bpd"]) for p in pts if math.isfinite(float(p.get("val_bpd", math.nan)))}


def plot_val_curves(records: Iterable[Mapping[str, Any]],
                    group: Callable[[Mapping[str, Any]], str] = lambda rec: rec["spec"].get("method", rec["label"]),
                    path=None, title: str = ""):
    """Validation bits/dim against training steps from the records' ``val_curve``: per ``group`` (method) the
    mean over its seeds at the steps all of them validated at (the intersection), and a band from the minimum to
    the maximum over the seeds. Non-finite points are left out. Records without a curve (the smoke profile) are
    skipped; with none at all nothing is drawn and None returned."""
    groups: dict[str, list[dict[int, float]]] = {}
    for rec in records:
        if c := _curve(rec):
            groups.setdefault(str(group(rec)), []).append(c)
    if not groups:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    empty = []
    for i, (name, curves) in enumerate(groups.items()):
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        if not steps:
            empty.append(name)
            continue
        v = np.array([[c[s] for s in steps] for c in curves])
        ax.plot(steps, v.mean(0), color=f"C{i}", label=f"{name} (mean of {len(curves)} seed{'s' * (len(curves) > 1)})")
        if len(curves) > 1:
            ax.fill_between(steps, v.min(0), v.max(0), color=f"C{i}", alpha=0.2, lw=0)
    ax.set_xlabel("training step"), ax.set_ylabel("validation bits/dim"), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    note = "band: min–max over seeds" + (f"; not shown, seeds share no step: {', '.join(empty)}" if empty else "")
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9)
    fig.tight_layout()
    return finish(fig, path)
