"""The paper's invertible attention layers, under one roof.

``IMap(channels, mask=...)`` and ``ITrans(channels, heads=..., patches=..., mask=...)``;
mask names: ``"checkerboard"`` (spatial-channel, the paper's), ``"spatial"``,
``"channel"``, ``"random"``.
"""
from .imap import IMap
from .itrans import ITrans
from .masks import MASK_KINDS, make_mask

ATTENTION_KINDS = ("none", "imap", "itrans")
POSITIONS = (1, 2, 3, 4)

__all__ = ["IMap", "ITrans", "MASK_KINDS", "make_mask", "ATTENTION_KINDS", "POSITIONS"]
