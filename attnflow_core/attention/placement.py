"""Where an attention layer goes in a flow step: one rule for every step kind (AttnFlow §5, cAttnFlow).

A step is ActNorm → 1×1 conv → (SRFlow: affine injector →) coupling. ``position`` ``p`` in :data:`POSITIONS`:
1 before the ActNorm, 2 after it, 3 after the 1×1 conv, 4 after the last layer of the step (after the
coupling; in SRFlow's step after the coupling too, so the injector is never separated from its coupling at
``p = 4``). Index ``p − 1`` for ``p ≤ 3`` and the end of the step for ``p = 4``; validated here, once.
"""
from __future__ import annotations

from ..core.errors import FlowError

POSITIONS = (1, 2, 3, 4)


def attention_index(position: int, n_layers: int) -> int:
    """The insertion index of an attention at ``position`` in a step of ``n_layers`` layers (module docstring)."""
    if not isinstance(position, int) or isinstance(position, bool) or position not in POSITIONS:
        raise FlowError(f"attention position must be one of {POSITIONS} (1: before the ActNorm, 2: after it, "
                        f"3: after the 1×1 conv, 4: at the end of the step), got {position!r}")
    if n_layers < 3:
        raise FlowError(f"a flow step has at least ActNorm, 1×1 conv and coupling; got {n_layers} layers")
    return position - 1 if position < 4 else n_layers


def place_attention(layers: list, attention: object, position: int) -> int:
    """Insert ``attention`` into the step's ``layers`` (in place) at ``position``; returns its index."""
    i = attention_index(position, len(layers))
    layers.insert(i, attention)
    return i
