"""State dicts written by the original authors' codes, mapped onto our models.

Belongs here: one module per reference code (``marscf``: visinf/mar-scf; ``srflow``: andreas128/SRFlow;
``resflow``: rtqichen/residual-flows; ``fullglow``: MoeinSorkhei/glow2), each registering a loader with
:func:`register_reference`, plus the helpers they share. A loader makes every reparameterisation explicit
(for example ActNorm ``(x + b)·e^l`` to ``x·e^l + b·e^l``, weight norm ``g·v/‖v‖``), names in its docstring
the reference keys it deliberately ignores, and raises :class:`~attnflow_core.core.errors.CheckpointError`
listing any other key it cannot place. Modules may also offer scoring in the reference's conventions
(dequantisation, per-pixel "nll"), so that a user can reproduce a number the original code prints.
No reference code lives here: only the mapping of names and parameterisations.
Imports ``core``, ``nn``, ``flows``, ``attention``, ``priors`` and the rest of ``models``; never the pipeline.

Example:
    >>> from attnflow_core.models import load_reference
    >>> model = load_reference("srflow_celeba_8x.pth", family="srflow")  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...core.errors import CheckpointError
from ...core.registry import Registry, import_submodules


@dataclass(frozen=True)
class ReferenceCode:
    """A reference code we can read: its name, repository, ``load(state_dict, config, **options)`` and, where
    its files need more than ``torch.load`` (pickled objects of that code), ``read(path) -> mapping``."""
    name: str
    repository: str
    load: Callable[..., nn.Module]
    read: Callable[[Path], Mapping[str, Any]] | None = None


REFERENCES: Registry[ReferenceCode] = Registry("reference code")


def register_reference(name: str, repository: str, read: Callable[[Path], Mapping[str, Any]] | None = None
                       ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: ``@register_reference("srflow", "andreas128/SRFlow")`` on ``load(state, config, **options)``;
    ``read`` reads that code's checkpoint files when plain ``torch.load`` cannot."""
    def deco(load: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        REFERENCES.add(name, ReferenceCode(name, repository, load, read))
        return load
    return deco


def read_state(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    """A checkpoint as a mapping: a path is read with ``torch.load`` on the CPU (tensors only where the file
    allows; wrappers such as ``{"state_dict": ...}`` are left for the family loader to unwrap)."""
    if isinstance(source, Mapping):
        return source
    path = Path(source).expanduser()
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # older pickles (argparse Namespace in residual-flows' files) need the full unpickler
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise CheckpointError(f"cannot read {path} as a torch checkpoint: {e}") from None


def load_reference(source: str | Path | Mapping[str, Any], family: str, config: Any = None,
                   **options: Any) -> nn.Module:
    """Build our model from a state dict (or its file) written by the reference code ``family``
    (one of :data:`REFERENCES`: ``marscf``, ``srflow``, ``resflow``, ``fullglow``). ``config`` is our config of
    the matching architecture (a dict or config object; each loader documents its default). Raises
    :class:`CheckpointError` naming every key it cannot place."""
    code = REFERENCES[family]
    if code.read is not None and not isinstance(source, Mapping):
        path = Path(source).expanduser()
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        return code.load(code.read(path), config, **options)
    return code.load(read_state(source), config, **options)


def check_all_used(code: str, keys: Iterable[str], used: Iterable[str], ignored: Iterable[str] = ()) -> None:
    """Raise :class:`CheckpointError` listing the reference keys that were neither placed nor declared unused."""
    left = sorted(set(keys) - set(used) - set(ignored))
    if left:
        shown = ", ".join(left[:20]) + (f" … ({len(left)} in all)" if len(left) > 20 else "")
        raise CheckpointError(f"{code} checkpoint has keys this loader cannot place: {shown}")


def assign(model: nn.Module, mapped: Mapping[str, Tensor], code: str) -> None:
    """Copy ``mapped`` (our key -> tensor) into ``model``; every parameter and buffer of the model must be
    given, with its exact shape, else :class:`CheckpointError` lists what is missing or mismatched."""
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    extra = sorted(set(mapped) - set(own))
    shapes = [f"{k}: ours {tuple(own[k].shape)}, {code} {tuple(mapped[k].shape)}"
              for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape]
    if missing or extra or shapes:
        raise CheckpointError(f"{code} checkpoint does not fit this model: missing {missing[:20]}, "
                              f"unexpected {extra[:20]}, shape mismatches {sorted(shapes)[:20]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in mapped.items()})


import_submodules(__name__)  # every reference module registers itself

__all__ = ["REFERENCES", "ReferenceCode", "assign", "check_all_used", "load_reference", "read_state",
           "register_reference"]
