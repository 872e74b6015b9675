"""Writing a finished table: ``<table>.csv`` and ``<table>.md`` with a provenance header.

Presentation only (listed in :data:`~attnflow_core.repro.provenance.NON_NUMERIC`), so a change of
formatting here does not invalidate cached cells.
"""
from __future__ import annotations

import math
import os
from typing import Any

from ..core.io import write_text
from .paths import results_dir
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
    """Write ``<table>.csv`` and ``<table>.md`` (with provenance) atomically."""
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
    if profile == "smoke":
        header += "\n" + t.smoke_note + "\n"
    write_text(md_path, header + ("\n" + note + "\n" if note else "") + "\n" + view.to_markdown(index=False) + "\n")
    return csv_path, md_path
