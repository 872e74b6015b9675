"""Table specs: one module per table in ``repro/tables`` defines what its cells are and how they are
trained and evaluated; one notebook of the same name builds the table from the cells.

A *cell* is one trained-and-evaluated model, described by a JSON-friendly dict (its *spec*): at least
``model`` (a model config), ``train`` (a :class:`~attnflow_core.training.TrainConfig` as a dict) and
``label``; a table adds what its data and rows need. The cell runner (:mod:`attnflow_core.repro.cells`)
asks the table spec for the data, the objective, the training hooks and the **evaluators** of a cell,
so a new table brings its own metrics (bits/dim, FID, PSNR, conditional bits/dim, ...)
without touching the runner. Tables register themselves in :data:`TABLES` when their module is
imported; the driver runs them in ``order``. A table's grid (which heads, positions, seeds, steps) is
not here but in its notebook's parameters cell (:mod:`~attnflow_core.repro.params`): :meth:`TableSpec.cells`
reads it and :meth:`TableSpec.build` turns its values into cells.
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn

from ..core.errors import AttnflowError
from ..core.registry import Registry
from ..data.batches import BatchSource

# the seeds of a table whose notebook says ``seeds = None``: evidence needs several, a pipeline check one
PROFILE_SEEDS = {"cpu": [0, 1, 2]}  # smoke and paper: each cell's own (pass seeds=[0, 1, 2] for evidence)
# the spec keys that decide a cell's numbers (and so its cache key); labels and paper columns do not
IDENT_KEYS = ("dataset", "convention", "data", "model", "train", "evaluators")


@dataclass
class CellData:
    """What a cell trains on and is evaluated on."""

    train: BatchSource
    test: Tensor  # uint8 test images (N, C, H, W)
    test_cond: Tensor | None = None
    n_train: int = 0
    val: Tensor | None = None  # uint8 validation images: checkpoints are selected on them, never on the test split
    val_cond: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellContext:
    """Where an evaluator may write files (sample grids, figures) and what it evaluates."""

    table: "TableSpec"
    spec: dict[str, Any]
    key: str
    profile: str
    out_dir: Path


class Evaluator(Protocol):
    name: str

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]: ...


class TableSpec:
    """Base of table specs. Subclasses set ``name``, ``description``, ``order`` and implement
    :meth:`cells`, :meth:`load_data`, :meth:`evaluators` and :meth:`row`."""

    name: str = ""
    description: str = ""
    order: int = 100
    has_cells: bool = True
    profiles: tuple[str, ...] = ("smoke", "paper")  # the profiles this table has settings for
    smoke_note: str = "**Smoke numbers are not the paper's numbers**: tiny models, short training."
    # True: a cell whose training diverges (NonFiniteError) is recorded as a result ("diverged": reason)
    # instead of failing the table -- for tables that reproduce published methods that can diverge
    record_divergence: bool = False

    # -- the grid -----------------------------------------------------------------------------
    def cells(self, profile: str, **grid: Any) -> list[dict[str, Any]]:
        """The cells of ``profile`` for the grid of the table notebook's parameters cell, with ``grid``
        overriding it (an undeclared name is an error). ``seeds`` and ``steps`` are the schedule, applied
        to every trained cell; the other names are the table's own axes, passed to :meth:`build`."""
        from .params import resolve_grid

        full, _ = resolve_grid(self.name, grid)
        seeds, steps = full.pop("seeds", None), full.pop("steps", None)
        # the schedule may be given per profile ({"cpu": 1500}); a profile not named gets its default
        seeds, steps = (v.get(profile) if isinstance(v, dict) else v for v in (seeds, steps))
        if seeds is None:
            seeds = PROFILE_SEEDS.get(profile)
        return apply_schedule(self.build(profile, **full), seeds, steps)

    def build(self, profile: str, **axes: Any) -> list[dict[str, Any]]:
        """The cells of ``profile`` at the given values of the table's own grid axes."""
        raise NotImplementedError

    def find_cell(self, profile: str, label_or_index: str | int, **grid: Any) -> dict[str, Any]:
        cells = self.cells(profile, **grid)
        if isinstance(label_or_index, int) or str(label_or_index).isdigit():
            i = int(label_or_index)
            if not 0 <= i < len(cells):
                raise AttnflowError(f"{self.name} ({profile}) has {len(cells)} cells; there is no cell {i}")
            return cells[i]
        for c in cells:
            if c["label"] == label_or_index or cell_key(c) == label_or_index:
                return c
        raise AttnflowError(f"no cell {label_or_index!r} in {self.name}; cells: {[c['label'] for c in cells]}")

    def readable_name(self, spec: dict[str, Any]) -> str:
        """The human-readable part of a cell's cache key."""
        return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in spec["label"])

    # -- what the cell runner asks for ----------------------------------------------------------
    def load_data(self, spec: dict[str, Any], profile: str, data_root: str | None) -> CellData:
        raise NotImplementedError

    def objective(self, spec: dict[str, Any]) -> Callable | None:
        """``objective(model, batch) -> loss``; ``None``: mean bits/dim."""
        return None

    def evaluators(self, spec: dict[str, Any]) -> list[Evaluator]:
        raise NotImplementedError

    def validation(self, spec: dict[str, Any], data: CellData) -> Callable[[nn.Module], float] | None:
        """``validate(model) -> float`` (lower is better) for checkpoint selection when the cell's training
        sets ``eval_every``; default: bits/dim of the validation split (seeded dequantisation)."""
        if data.val is None:
            return None
        from ..metrics.likelihood import evaluate_bpd

        return lambda model: evaluate_bpd(model, data.val, cond=data.val_cond)["bpd"]

    def measure(self, spec: dict[str, Any], ctx: CellContext, data_root: str | None) -> dict[str, Any]:
        """The numbers of a cell without ``train`` (a benchmark, the scores of real data): it is measured, not
        trained, and cached in its record like a trained cell's metrics."""
        raise NotImplementedError

    def row(self, spec: dict[str, Any], record: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        """The table row (or rows) of a cell, from its spec and its result record."""
        raise NotImplementedError

    # -- the notebook (its parameters are the ones its parameters cell declares) ----------------
    def outputs(self, out_dir: Path) -> list[Path]:
        """The files in a profile's folder that this table wrote (for the results index)."""
        return sorted(p for p in out_dir.glob(f"{self.name}*") if p.is_file())


class NotebookSpec(TableSpec):
    """A notebook with no grid cells (a walkthrough, a benchmark)."""

    has_cells = False

    def cells(self, profile: str, **grid: Any) -> list[dict[str, Any]]:
        return []


TABLES: Registry[TableSpec] = Registry("table")


def apply_schedule(specs: list[dict[str, Any]], seeds: list[int] | None, steps: int | None) -> list[dict[str, Any]]:
    """Every trained cell once per seed (``train.seed``; the label says the seed where it is not the cell's
    own), with ``train.steps = steps`` unless ``steps`` is ``None`` (the profile's). Measured cells (no
    ``train``) are left as they are."""
    if seeds is not None and not isinstance(seeds, (list, tuple)):
        seeds = [seeds]
    out = []
    for spec in specs:
        if "train" not in spec:
            out.append(spec)
            continue
        for seed in seeds if seeds is not None else [spec["train"].get("seed", 0)]:
            s = copy.deepcopy(spec)
            if seed != spec["train"].get("seed", 0) or (seeds is not None and len(seeds) > 1):
                s["label"] = f"{spec['label']} seed={seed}"
            s["train"]["seed"] = int(seed)
            if steps is not None:
                s["train"]["steps"] = int(steps)
            out.append(s)
    return out


def register_table(spec: TableSpec) -> TableSpec:
    if not spec.name:
        raise AttnflowError(f"{type(spec).__name__} has no name")
    return TABLES.add(spec.name, spec)


def cell_key(spec: dict[str, Any]) -> str:
    """``<readable>-<digest of the spec's identity>``: the file name of the cell's cached result.
    Cells of two tables with the same identity share one result."""
    ident = {k: spec[k] for k in IDENT_KEYS if k in spec}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    return f"{TABLES[spec['table']].readable_name(spec)}-{digest}"
