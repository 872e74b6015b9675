"""Where things are: the source checkout (found by walking up to ``pyproject.toml``, never by counting
parent folders) and the results folders of each profile."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..core.errors import AttnflowError

PROFILES = ("smoke", "cpu", "paper")


@lru_cache(maxsize=None)
def repo_root() -> Path | None:
    """The source checkout holding this package (the first parent with attnflow_core's
    ``pyproject.toml``), or ``None`` for an installed copy without a checkout."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "pyproject.toml"
        if candidate.is_file() and 'name = "attnflow_core"' in candidate.read_text(encoding="utf-8"):
            return parent
    return None


def package_root() -> Path:
    """The ``attnflow_core`` package folder."""
    return Path(__file__).resolve().parent.parent


def notebook_dir() -> Path:
    root = repo_root()
    if root is None or not (root / "notebooks").is_dir():
        raise AttnflowError(f"notebooks not found (no source checkout above {package_root()}); "
                            f"run the driver from a clone of the repository")
    return root / "notebooks"


def default_results_root() -> Path:
    """``$ATTNFLOW_RESULTS``, else the checkout's ``results/`` (editable install), else ``./results``."""
    env = os.environ.get("ATTNFLOW_RESULTS")
    if env:
        return Path(env)
    root = repo_root()
    if root is not None and (root / "notebooks").is_dir():
        return root / "results"
    return Path.cwd() / "results"


def results_dir(profile: str, results_root: str | os.PathLike | None = None) -> Path:
    """The folder of one profile's results (``<results_root>/<profile>``)."""
    if profile not in PROFILES:
        raise AttnflowError(f"profile must be one of {PROFILES}, got {profile!r}")
    root = Path(results_root) if results_root is not None else default_results_root()
    return root / profile


def runs_dir(profile: str, results_root: str | os.PathLike | None = None) -> Path:
    """Checkpoints of training runs: ``<results_root>/_runs/<profile>``, inside the chosen results root
    (``results/_runs`` is git-ignored), so a run into a temporary root leaves nothing elsewhere."""
    return results_dir(profile, results_root).parent / "_runs" / profile
