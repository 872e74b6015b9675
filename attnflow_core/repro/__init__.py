"""The reproduction pipeline: table specs, the cell runner, the papermill driver, plots, provenance.

Belongs here: one spec module per table in ``repro/tables`` (what to train, how to evaluate, how a
row looks), the notebook parameters (the grids), the cell runner and its worker processes, the driver
(``python -m attnflow_core.repro``), the results index, plots and provenance (code hash, commit, hardware). It imports everything above it; nothing imports it.
"""
from . import tables  # noqa: F401  (registers every table)
from .cells import Interrupted, collect, load_cell, run_cell
from .params import TableRun, declared_parameters, table_run
from .paths import PROFILES, default_results_root, repo_root, results_dir
from .provenance import code_hash, git_commit, hardware_label
from .report import write_table
from .spec import TABLES, CellContext, CellData, NotebookSpec, TableSpec, cell_key, register_table


def get_table(name: str) -> TableSpec:
    """The registered spec of table ``name``."""
    return TABLES[name]


__all__ = ["Interrupted", "TableRun", "declared_parameters", "table_run", "collect", "load_cell", "run_cell", "write_table", "PROFILES", "default_results_root", "repo_root",
           "results_dir", "code_hash", "git_commit", "hardware_label", "TABLES", "CellContext", "CellData",
           "NotebookSpec", "TableSpec", "cell_key", "register_table", "get_table"]
