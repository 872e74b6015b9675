"""Provenance of every number: the code hash that keys cached cells, the commit and the hardware.

The code hash covers every module of the package that decides numbers: all of ``attnflow_core``
except an explicit list of modules that only present or drive (:data:`NON_NUMERIC`). A new module is
therefore covered the moment it exists. It is one hash for the whole package (not one per table), so
a cell that two tables share has one valid record. It hashes each module's syntax tree without its
docstrings (:func:`module_fingerprint`), so a docstring, a comment or a reformatting keeps every cached
cell, while any change of code (a constant, an operator, a default) invalidates them.
"""
from __future__ import annotations

import ast
import hashlib
import platform
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from .paths import package_root

# relative to the package folder; every other .py file decides numbers and is hashed
NON_NUMERIC = (
    "testing.py",  # contract checks for the test suite
    "diagnostics/",  # walkthrough helpers: closed forms, dense Jacobians
    "repro/driver.py", "repro/workers.py", "repro/params.py", "repro/index.py", "repro/plots.py", "repro/provenance.py", "repro/paths.py",
    "repro/report.py",  # writes finished tables (csv, markdown header)
    "repro/sr_plots.py",
    "repro/contractive_plots.py",  # figures and summaries of table_contractive, built from finished cells
    "repro/evidence.py",  # intervals, paired differences and verdicts over finished table rows
)


def numeric_files() -> list[Path]:
    """The files the code hash covers: every package module but :data:`NON_NUMERIC`."""
    root = package_root()
    return [p for p in sorted(root.rglob("*.py"))
            if "__pycache__" not in p.parts
            and not any((rel := p.relative_to(root).as_posix()) == n or (n.endswith("/") and rel.startswith(n))
                        for n in NON_NUMERIC)]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` without the docstrings of its module, classes and functions (a body left empty gets
    ``pass``, which is what the docstring did at run time)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def module_fingerprint(source: str | bytes, filename: str = "<module>") -> str:
    """What of a module decides numbers: ``ast.dump`` of its syntax tree without docstrings. Comments and
    layout are not in the tree; line numbers are left out (``include_attributes=False``)."""
    return ast.dump(_strip_docstrings(ast.parse(source, filename)), include_attributes=False)


TABLES_DIR = "repro/tables/"
# what a table spec does that decides a cell's numbers (its grid, build(), only names cells: that is in the key)
NUMERIC_TABLE_MEMBERS = ("load_data", "objective", "evaluators", "validation", "measure", "record_divergence")


@lru_cache(maxsize=None)
def _hash_files(rels: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    root = package_root()
    for rel in rels:
        p = root / rel
        h.update(rel.encode())
        h.update(b"\0")
        h.update(module_fingerprint(p.read_bytes(), str(p)).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def _rel(p: Path) -> str:
    return p.relative_to(package_root()).as_posix()


def code_hash(table=None) -> str:
    """Hash of the modules that make the numbers (as code: their docstrings and comments do not count).

    Without ``table``: every numeric module of the package. With a table spec (or its name): the package
    without ``repro/tables/``, plus the table modules that define how that table's cells are trained and
    scored (the classes of its spec's MRO that define one of :data:`NUMERIC_TABLE_MEMBERS`, and the table
    modules they import). A cell record is reused only if its table's hash is unchanged: adding a profile to
    Table 3 leaves Table 2's records valid, and Table 2 and the ablations, which share their cells' data
    and evaluators (``_mnist.py``), share one hash."""
    files = numeric_files()
    if table is None:
        return _hash_files(tuple(_rel(p) for p in files))
    return _hash_files(tuple([_rel(p) for p in files if not _rel(p).startswith(TABLES_DIR)]
                             + sorted(table_files(table))))


code_hash.cache_clear = _hash_files.cache_clear  # type: ignore[attr-defined]  # (tests edit a package copy)


def table_files(table) -> set[str]:
    """The ``repro/tables/`` modules that decide the numbers of ``table``'s cells (see :func:`code_hash`)."""
    from .spec import TABLES

    spec = TABLES[table] if isinstance(table, str) else table
    # by module name, so that the files are read under package_root() (the tests hash an edited copy)
    todo = {cls.__module__.split(".", 1)[1].replace(".", "/") + ".py" for cls in type(spec).__mro__
            if cls.__module__.startswith(__package__ + ".tables") and any(m in vars(cls) for m in NUMERIC_TABLE_MEMBERS)}
    done: set[str] = set()
    while todo:  # and the table modules those import (from ._mnist import ...)
        rel = todo.pop()
        done.add(rel)
        for node in ast.walk(ast.parse((package_root() / rel).read_bytes())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                dep = f"{TABLES_DIR}{node.module.replace('.', '/')}.py"
                if (package_root() / dep).is_file() and dep not in done:
                    todo.add(dep)
    return done


def hardware_label(device: torch.device | str | None = None) -> str:
    """``GPU <name>`` or ``CPU <model> (<threads> threads)``."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {cpu} ({cpu_capability()}, {torch.get_num_threads()} threads)"


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels dispatch to (``AVX2``, ``AVX512``, ...): the same commit
    and thread count give other numbers on another capability, because the kernels round differently."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # older torch
        return "unknown"


def blas_info() -> str:
    """The BLAS torch was built with (``mkl``, ``openblas``, ...), from its build settings."""
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def machine_record(device: torch.device | str | None = None) -> dict[str, object]:
    """What a cell record states about the machine besides the code: everything that changes numbers."""
    return {"hardware": hardware_label(device), "cpu_capability": cpu_capability(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas_info(),
            "device": str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")}


def git_commit() -> str:
    """Short hash of the checkout's HEAD (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"
