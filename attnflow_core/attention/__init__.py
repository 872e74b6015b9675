"""Attention layers that are flows (AttnFlow's iMap and iTrans) and their masks, and the Lipschitz
attentions of contractive flows (ACF's L2 and dot-product attention, Zha's iDP/iCon), which live inside
residual branches (``acf``, ``zha``, ``lipschitz_attention``; not in ``ATTENTIONS``, which builds flow steps).

``IMap(channels, mask=...)`` and ``ITrans(channels, heads=..., patches=..., mask=..., size=...)``; iTrans'
``patches`` is a square count, a ``(rows, cols)`` grid or ``"auto"`` (``resolve_patches`` gives the grid
of a map: ``"auto"`` takes the largest square grid up to the paper's 2×2 that divides it); mask names:
``"checkerboard"`` (spatial-channel, the paper's), ``"spatial"``, ``"channel"``, ``"random"``.
``ATTENTIONS[name](channels, cond_channels=..., **options)`` builds one by name (models use it instead
of if/else chains); ``"none"`` is not registered: it means no attention layer.

Belongs here: attention mechanisms and masks. Not here: the steps/models that place them (``models``).
Imports ``core`` and ``nn`` only.
"""
from __future__ import annotations

from typing import Any

from ..core.registry import Registry
from .acf import ACFPublishedDotAttention, L2SelfAttention, LipschitzDotAttention
from .imap import IMap
from .itrans import ITrans, parse_patches, resolve_patches
from .masks import MASK_KINDS, make_mask
from .zha import ZhaAttention

ATTENTIONS: Registry = Registry("attention")


@ATTENTIONS.register("imap")
def _build_imap(channels: int, cond_channels: int = 0, mask: str = "checkerboard", mask_seed: int = 0,
                **_: Any) -> IMap:
    return IMap(channels, mask=mask, cond_channels=cond_channels, mask_seed=mask_seed)


@ATTENTIONS.register("itrans")
def _build_itrans(channels: int, cond_channels: int = 0, mask: str = "checkerboard", mask_seed: int = 0,
                  heads: int = 5, patches: int | str = 4, qk_channels: int | None = None,
                  size: tuple[int, int] | None = None, **_: Any) -> ITrans:
    return ITrans(channels, heads=heads, patches=patches, mask=mask, qk_channels=qk_channels,
                  cond_channels=cond_channels, mask_seed=mask_seed, size=size)


ATTENTION_KINDS = ("none",) + ATTENTIONS.names()
POSITIONS = (1, 2, 3, 4)

__all__ = ["IMap", "ITrans", "parse_patches", "resolve_patches", "MASK_KINDS", "make_mask", "ATTENTIONS", "ATTENTION_KINDS", "POSITIONS",
           "ACFPublishedDotAttention", "L2SelfAttention", "LipschitzDotAttention", "ZhaAttention"]
