"""Writing a finished table: ``<table>.csv`` and ``<table>.md`` with a provenance header.

Presentation only (listed in :data:`~attnflow_core.repro.provenance.NON_NUMERIC`), so a change of
formatting here does not invalidate cached cells.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ..core.io import write_json, write_text
from .paths import results_dir
from .provenance import code_hash, git_commit
from .spec import TABLES, TableSpec


def _fmt(v: Any) -> str:
    # training steps come back as floats from a DataFrame column with blanks: print 50, not 50.0
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _values(df, col: str) -> str:
    """The distinct values of ``df[col]``, sorted, for the header (``?`` if the column is absent)."""
    if col not in df:
        return "?"
    # blanks (rows without a run of ours, e.g. paper-only rows) are skipped; mixed types sort as text
    vals = {v for v in df[col] if not (isinstance(v, float) and math.isnan(v)) and not (isinstance(v, str) and v == "")}
    try:
        ordered = sorted(vals)
    except TypeError:
        ordered = sorted(vals, key=str)
    return ", ".join(dict.fromkeys(_fmt(v) for v in ordered))


def write_table(df, table: str | TableSpec, profile: str, results_root: str | os.PathLike | None = None,
                columns: list[str] | None = None, note: str = "") -> tuple[Any, Any]:
    """Write ``<table>.csv``, ``<table>.md`` (with a provenance header) and ``<table>.provenance.json`` (the cell
    records it was built from, each with its ``finished`` stamp) atomically."""
    t = table if isinstance(table, TableSpec) else TABLES[table]
    out = results_dir(profile, results_root)
    csv_path, md_path = out / f"{t.name}.csv", out / f"{t.name}.md"
    write_text(csv_path, df.to_csv(index=False))
    view = df[columns] if columns else df
    header = (f"# {t.name} ({profile} profile)\n\n"
              f"Profile **{profile}**; data set {_values(df, 'dataset')}; "
              f"training steps {_values(df, 'train_steps')}; hardware {_values(df, 'hardware')}; "
              f"code hash {_values(df, 'code_hash')}.\n"
              f"Columns `paper_*` are the paper's numbers, shown beside ours, never in place of them.\n")
    if "_variants" in out.parts:  # a grid other than the notebook's declared one (params.variant_root)
        header += f"\n**A non-default grid** ({out.parent.name}): not the canonical table.\n"
    if profile == "smoke":
        header += "\n" + t.smoke_note + "\n"
    cells = _cells_used(df, out)
    header += f"Built {time.strftime('%Y-%m-%d %H:%M:%S')} from {len(cells)} cell record(s): `{t.name}.provenance.json`.\n"
    write_text(md_path, header + ("\n" + note + "\n" if note else "") + "\n" + view.to_markdown(index=False) + "\n")
    write_json(provenance_path(out, t.name), {"table": t.name, "profile": profile, "built": time.strftime("%Y-%m-%d %H:%M:%S"),
                                              "commit": git_commit(), "code_hash": code_hash(), "cells": cells})
    return csv_path, md_path


def provenance_path(out: Path, table: str) -> Path:
    return out / f"{table}.provenance.json"


def _record(out: Path, key: str) -> dict[str, Any] | None:
    path = out / "cells" / f"{key}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _cells_used(df, out: Path) -> dict[str, dict[str, Any]]:
    """The records behind a table's rows (its ``key`` column), with what identifies each version of them."""
    keys = [k for k in dict.fromkeys(df["key"]) if isinstance(k, str) and k] if "key" in df else []
    used = {}
    for k in keys:
        rec = _record(out, k)
        if rec is not None:
            used[k] = {"label": rec.get("label"), "finished": rec.get("finished"), "code_hash": rec.get("code_hash"),
                       "commit": rec.get("commit")}
    return used


def stale_tables(profile: str, results_root: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Tables whose cell records changed (rerun, or removed) since the table was built: name -> cell labels.
    A cell shared by two tables and rerun for one leaves the other stale until it is rebuilt."""
    out = results_dir(profile, results_root)
    stale = {}
    for name in TABLES:
        path = provenance_path(out, name)
        if not path.exists():
            continue
        changed = [c.get("label") or k for k, c in json.loads(path.read_text()).get("cells", {}).items()
                   if (rec := _record(out, k)) is None or rec.get("finished") != c.get("finished")]
        if changed:
            stale[name] = changed
    return stale


def write_evidence(df, table: str | TableSpec, profile: str, results_root: str | os.PathLike | None = None,
                   claims=(), by: str = "method", records=(), group=None, metric: str = "bpd"):
    """The evidence section of a table (after :func:`write_table`): the per-method summary over seeds (mean ±
    95 % t-interval), the paired claims with their verdicts (:mod:`~attnflow_core.repro.evidence`), the
    protocol that produced them, and the figure of validation bits/dim against steps (``<table>_curves.png``,
    one line per ``group(record)`` with a min–max band over seeds). Appended to ``<table>.md``; the claims
    also go to ``<table>.claims.csv``. Returns the claims DataFrame."""
    from . import evidence as ev

    t = table if isinstance(table, TableSpec) else TABLES[table]
    out = results_dir(profile, results_root)
    summary = ev.seed_summary(df, metric=metric, by=by)
    ct = ev.claims_table(df, list(claims), metric=metric, by=by, allow_unpaired=True)
    write_text(out / f"{t.name}.claims.csv", ct.to_csv(index=False))
    records = [r for r in records if r]
    seeds = sorted({int(s) for s in df["seed"]}) if "seed" in df else []
    spikes = int(df["n_spikes"].fillna(0).sum()) if "n_spikes" in df else 0
    weights = _values(df, "weights")
    secs = sum(float(r.get("train_seconds") or 0) + float(r.get("eval_seconds") or 0) for r in records
               if not (isinstance(r.get("train_seconds"), float) and math.isnan(r["train_seconds"])))
    lines = ["", "## Evidence", "",
             f"Seeds {', '.join(map(str, seeds)) or '?'} per method (a seed fixes the initialisation, the data order "
             f"and the dequantisation noise; every method sees the same data order for the same seed). Weights "
             f"scored on the test split: {weights} (`best`: the checkpoint of lowest validation bits/dim, "
             f"`-ema`: of the exponential moving average of the weights); loss spikes restored: {spikes}. "
             f"Training steps {_values(df, 'train_steps')}; compute {secs / 3600:.2f} core-hours for "
             f"{len(records)} cell(s) (training with validation, and the test evaluation; one thread each) on "
             f"{_values(df, 'hardware')}.", "",
             "### Test bits/dim per method over seeds (mean ± 95 % t-interval)", "",
             summary.to_markdown(index=False), ""]
    if len(ct):
        lines += ["### Claims (paired on seed: method − baseline)", "", ev.claims_markdown(ct), ""]
    if records:
        fig = ev.plot_val_curves(records, **({"group": group} if group else {}),
                                 path=out / f"{t.name}_curves.png", title=f"{t.name} ({profile}): validation bits/dim")
        if fig is not None or (out / f"{t.name}_curves.png").exists():
            lines += [f"Validation curves: `{t.name}_curves.png`.", ""]
    md = out / f"{t.name}.md"
    write_text(md, (md.read_text(encoding="utf-8") if md.exists() else "") + "\n".join(lines))
    return ct
