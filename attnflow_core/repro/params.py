"""Notebook parameters: a table notebook's ``parameters`` cell declares its grid, and nothing else is accepted.

A table notebook's parameters cell holds literals only: the common ``profile``, ``results_root`` and
``data_root`` and the table's grid and schedule (``heads = [1, 3, 5, 7]``, ``seeds = None`` and
``steps = None`` for the profile's defaults, or a schedule per profile such as ``steps = {"cpu": 1500}``). :func:`declared_parameters` reads them from the notebook
(the ``.ipynb`` papermill executes), so the grid lives in one place and editing it changes no code hash.
papermill only *warns* about a parameter the notebook does not declare; :func:`table_run`, called in the
first cell after the parameters, makes it an error (a typo such as ``-p tabel ...`` no longer runs the
default table). A grid other than the declared one writes into its own results root
(:func:`variant_root`), never over the canonical tables.
"""
from __future__ import annotations

import ast
import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..core.errors import ParameterError
from .paths import default_results_root, notebook_dir, results_dir

COMMON = ("profile", "results_root", "data_root")
# what a kernel defines besides the notebook's own names
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_VALUE_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


@lru_cache(maxsize=None)
def _read_parameters(path: str, mtime_ns: int) -> dict[str, Any]:
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{path} must have exactly one cell tagged 'parameters' (found {len(cells)})")
    src = "".join(cells[0]["source"]) if isinstance(cells[0]["source"], list) else cells[0]["source"]
    out: dict[str, Any] = {}
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"{path}: the parameters cell may hold only `name = literal` lines, "
                                 f"not {ast.unparse(node)!r}")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"{path}: parameter {node.targets[0].id} must be a literal, "
                                 f"not {ast.unparse(node.value)!r}") from None
    return out


def declared_parameters(notebook: str) -> dict[str, Any]:
    """The parameters (names and default values) of ``notebooks/<notebook>.ipynb``."""
    path = notebook_dir() / f"{notebook}.ipynb"
    if not path.is_file():
        raise ParameterError(f"no notebook {path}")
    return dict(_read_parameters(str(path), path.stat().st_mtime_ns))


def grid_defaults(notebook: str) -> dict[str, Any]:
    """The declared grid and schedule of a table notebook: its parameters but the common ones."""
    return {k: v for k, v in declared_parameters(notebook).items() if k not in COMMON}


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` read as the declared parameter ``name`` (default ``default``). papermill's ``-p`` and the
    driver's ``--set`` pass text: ``"[2, 4]"``, ``"2,4"`` and ``"2"`` all give ``[2, 4]`` / ``[2]`` for a
    list parameter; ``"50"`` gives ``50`` for ``steps = None``."""
    if isinstance(value, str) and not isinstance(default, str):
        text = value.strip()
        value = _literal(text)
        if isinstance(default, list) and isinstance(value, str) and "," in text:
            value = [_literal(v) for v in text.strip("[]()").split(",") if v.strip()]
    if isinstance(default, dict) and not isinstance(value, dict):  # a per-profile schedule given one value
        return value
    if isinstance(default, list):
        value = list(value) if isinstance(value, (list, tuple)) else [value]
        if not value:
            raise ParameterError(f"parameter {name} is an empty list")
    elif default is not None and not isinstance(value, type(default)) and value is not None \
            and not (isinstance(default, float) and isinstance(value, int)):
        raise ParameterError(f"parameter {name} must be like its default {default!r}, got {value!r}")
    return value


def check_names(notebook: str, given: dict[str, Any] | list[str]) -> None:
    """An error naming every given parameter that ``notebook`` does not declare (with the closest declared)."""
    declared = declared_parameters(notebook)
    unknown = [n for n in given if n not in declared]
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, list(declared), n=1)
            hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(f"{notebook} has no parameter {', '.join(hints)}; its parameters: "
                             f"{', '.join(declared)}")


def namespace_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """The values a kernel holds before any code ran: the parameters cell's and papermill's injected ones
    (modules, functions and the kernel's own names are not parameters)."""
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _KERNEL_NAMES and isinstance(v, _VALUE_TYPES)}


def variant_root(table: str, grid: dict[str, Any], results_root: str | os.PathLike | None = None) -> Path:
    """The results root of a non-default grid: ``<results_root>/_variants/<table>-<what differs>-<digest>``."""
    root = Path(results_root) if results_root is not None else default_results_root()
    defaults = grid_defaults(table)
    differs = {k: v for k, v in grid.items() if defaults.get(k) != v}
    slug = "-".join(f"{k}={'_'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in differs.items())
    slug = "".join(ch if ch.isalnum() or ch in "=_." else "-" for ch in slug)[:60]
    digest = hashlib.sha256(json.dumps(grid, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return root / "_variants" / f"{table}-{slug}-{digest}"


def resolve_grid(table: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The full grid of ``table`` with ``overrides`` (names checked, values coerced), and whether it is the
    declared one."""
    check_names(table, [k for k in overrides if k not in COMMON])
    defaults = grid_defaults(table)
    grid = {k: coerce(k, overrides.get(k, v), v) for k, v in defaults.items()}
    return grid, grid == defaults


@dataclass
class TableRun:
    """What a table notebook runs: its table, profile, data root, checked grid and the results root the
    grid writes into (the canonical one for the declared grid, a variant root otherwise)."""

    table: str
    profile: str
    grid: dict[str, Any]
    is_default: bool
    results_root: str
    data_root: str | None
    canonical_root: str | None = None  # a variant's: cells it shares with the declared grid are copied from it

    @property
    def out(self) -> Path:
        return results_dir(self.profile, self.results_root)

    def cells(self) -> list[dict[str, Any]]:
        from .spec import TABLES

        return TABLES[self.table].cells(self.profile, **self.grid)

    def records(self) -> list[dict[str, Any]]:
        """The current records of this grid's cells (a cell without one is left out)."""
        from .cells import load_cell

        recs = (load_cell(s, self.profile, self.results_root) for s in self.cells())
        return [r for r in recs if r is not None]

    def collect(self, **kw: Any):
        from .cells import collect

        return collect(self.table, self.profile, self.results_root, data_root=self.data_root, grid=self.grid,
                       reuse_from=None if self.is_default else self.canonical_root, **kw)


def table_run(table: str, namespace: dict[str, Any]) -> TableRun:
    """Check a notebook's parameters (``globals()`` of its first cell after the parameters cell) against the
    ones it declares and resolve its grid; an undeclared or misspelt parameter is an error."""
    given = namespace_parameters(namespace)
    check_names(table, list(given))
    grid, is_default = resolve_grid(table, {k: v for k, v in given.items() if k not in COMMON})
    profile = given.get("profile", "smoke")
    base = given.get("results_root")
    canonical = Path(base).expanduser().resolve() if base else default_results_root()
    root = canonical
    if not is_default:
        root = variant_root(table, grid, canonical)
        print(f"{table}: grid {grid} is not the declared one; its results go to {root}")
    data_root = given.get("data_root")
    return TableRun(table, profile, grid, is_default, str(root),
                    str(Path(data_root).expanduser().resolve()) if data_root else None, str(canonical))
