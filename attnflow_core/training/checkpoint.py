"""Checkpoints: written atomically, read with errors that name the file and say what to do."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CheckpointError
from ..core.io import save_torch


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves the previous checkpoint intact."""
    save_torch(path, state)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu",
                    required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint; a truncated or corrupt file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    advice = (f"Delete {path} to restart this run from step 0 (or rerun the driver with --force); "
              f"results already written elsewhere are not affected.")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(f"checkpoint {path} ({size} bytes) is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}). {advice}") from None
    if not isinstance(state, dict) or any(k not in state for k in required):
        missing = [k for k in required if not isinstance(state, dict) or k not in state]
        raise CheckpointError(f"checkpoint {path} is not an attnflow training checkpoint "
                              f"(missing {missing}). {advice}")
    return state
