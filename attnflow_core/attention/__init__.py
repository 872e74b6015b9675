"""Attention layers that are flows (AttnFlow's iMap and iTrans), their masks, and where a step puts them.

``IMap(channels, mask=...)`` and ``ITrans(channels, heads=..., patches=..., mask=..., size=...)``; iTrans'
``patches`` is a square count, a ``(rows, cols)`` grid or ``"auto"`` (``resolve_patches`` gives the grid
of a map: ``"auto"`` takes the largest square grid up to the paper's 2×2 that divides it); mask names:
``"checkerboard"`` (spatial-channel, the paper's), ``"spatial"``, ``"channel"``, ``"random"``.
``ATTENTIONS[name](channels, **options)`` builds one by name (models use it instead of if/else chains); each
entry declares its options (``ATTENTIONS[name].options``) and refuses others, naming the valid ones;
``ATTENTIONS[name].select(options)`` keeps a config's options that the kind takes. ``"none"`` is not
registered: it means no attention layer. :func:`place_attention` puts a layer at ``position`` 1–4 of any step.

ACF's and Zha's Lipschitz attention maps are plain networks (``nn.acf``, ``nn.zha``,
``nn.lipschitz_attention``, registered in ``nn.contractive_attention``); their names are re-exported here.

Belongs here: attention mechanisms that are flow layers, masks, placement in a step. Not here: the
steps/models themselves (``models``). Imports ``core`` and ``nn`` only.
"""
from __future__ import annotations

from ..core.registry import Registry
from ..nn.acf import ACFPublishedDotAttention, L2SelfAttention, LipschitzDotAttention
from ..nn.contractive_attention import AttentionKind, register_kind
from ..nn.zha import ZhaAttention
from .imap import IMap
from .itrans import ITrans, parse_patches, resolve_patches
from .masks import MASK_KINDS, make_mask
from .placement import POSITIONS, attention_index, place_attention

ATTENTIONS: Registry[AttentionKind] = Registry("attention")


@register_kind(ATTENTIONS, "imap", "step")
def _build_imap(channels: int, cond_channels: int = 0, mask: str = "checkerboard", mask_seed: int = 0,
                size: tuple[int, int] | None = None) -> IMap:
    # ``size``: iMap works on any map; accepted so that every step kind is built with the same call
    return IMap(channels, mask=mask, cond_channels=cond_channels, mask_seed=mask_seed)


@register_kind(ATTENTIONS, "itrans", "step")
def _build_itrans(channels: int, cond_channels: int = 0, mask: str = "checkerboard", mask_seed: int = 0,
                  heads: int = 5, patches: int | str = 4, qk_channels: int | None = None,
                  size: tuple[int, int] | None = None) -> ITrans:
    return ITrans(channels, heads=heads, patches=patches, mask=mask, qk_channels=qk_channels,
                  cond_channels=cond_channels, mask_seed=mask_seed, size=size)


ATTENTION_KINDS = ("none",) + ATTENTIONS.names()

__all__ = ["IMap", "ITrans", "parse_patches", "resolve_patches", "MASK_KINDS", "make_mask", "ATTENTIONS",
           "ATTENTION_KINDS", "POSITIONS", "attention_index", "place_attention", "AttentionKind",
           "ACFPublishedDotAttention", "L2SelfAttention", "LipschitzDotAttention", "ZhaAttention"]
