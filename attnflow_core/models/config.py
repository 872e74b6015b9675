"""What every model family's config shares: dict round trips with clear errors, and small checks.

A family's config is a dataclass that derives from :class:`ModelConfig` and names its ``family``
(a class attribute, so it is not a field). ``from_dict`` refuses unknown keys and turns JSON lists
back into the tuples the fields are declared as; ``to_dict`` gives JSON-friendly lists. A family that
places iMap/iTrans in its steps derives from :class:`AttentionOptions` (the attention fields, their
checks and the layer they build) instead.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..attention import ATTENTION_KINDS, ATTENTIONS, POSITIONS, parse_patches, resolve_patches
from ..attention.masks import MASK_KINDS
from ..core.errors import FlowError
from ..core.layer import FlowLayer

# declared scalar type -> accepted Python types (bool is an int subclass: refused where a number is meant)
_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_scalar(family: str, name: str, kind: str, value: Any) -> None:
    base, optional = kind.removesuffix(" | None"), kind.endswith(" | None")
    if base not in _SCALARS or (optional and value is None):
        return
    ok = isinstance(value, _SCALARS[base]) and not (base in ("int", "float") and isinstance(value, bool))
    if not ok:
        raise FlowError(f"{family} config key {name!r} must be {kind}, got {value!r} ({type(value).__name__})")


class ModelConfig:
    """Mixin of the family configs (all dataclasses)."""

    family: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        d = {k: v for k, v in d.items() if not (k == "family" and v == cls.family)}
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - set(fields)
        if unknown:
            raise FlowError(f"unknown {cls.family} config key(s) {sorted(unknown)}; known: {sorted(fields)}")
        for name, value in list(d.items()):
            kind = str(fields[name].type)
            _check_scalar(cls.family, name, kind, value)
            if kind.startswith("tuple") and value is not None:
                d[name] = tuple(int(v) for v in value) if kind.startswith("tuple[int") else tuple(value)
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    # -- checks for validate() ------------------------------------------------------------------
    def _one_of(self, name: str, options: tuple) -> None:
        value = getattr(self, name)
        if value not in options:
            raise FlowError(f"config.{name}={value!r} is not one of {options}")

    def _at_least_one(self, *names: str) -> None:
        for name in names:
            if int(getattr(self, name)) < 1:
                raise FlowError(f"config.{name} must be at least 1, got {getattr(self, name)}")

    def _image_shape_ok(self) -> None:
        shape = getattr(self, "image_shape")
        if len(shape) != 3 or min(shape) < 1:
            raise FlowError(f"config.image_shape must be (C, H, W), got {shape}")


@dataclass
class AttentionOptions(ModelConfig):
    """The invertible attention a flow step gets (AttnFlow §4–5; cAttnFlow in the conditional families):
    ``attention`` (``"none"``, ``"imap"``, ``"itrans"``) at ``position`` 1–4 of the step, iTrans'
    ``heads``, ``patches`` and query/key width ``qk_channels``, the ``mask`` and its ``mask_seed``.
    The fields of every family config that places iMap/iTrans (multiscale, SRFlow, Full-Glow).

    ``patches``: a square count (4 = a 2×2 grid, the paper's), which must divide every level's map, or
    ``"auto"`` / ``"auto:N"``: per level, the largest square grid up to ``√N × √N`` (``N = 4`` for
    ``"auto"``) that divides that level's map (:func:`~attnflow_core.attention.resolve_patches`);
    :meth:`patch_grid` gives the grid of one map, the built models list theirs per level."""

    attention: str = "none"
    position: int = 4
    heads: int = 5
    patches: int | str = 4
    mask: str = "checkerboard"
    mask_seed: int = 0
    qk_channels: int | None = None

    def _attention_ok(self) -> None:
        for name, options in (("attention", ATTENTION_KINDS), ("position", POSITIONS), ("mask", MASK_KINDS)):
            self._one_of(name, options)
        self._at_least_one("heads")
        if self.attention == "itrans" or not isinstance(self.patches, int):
            if isinstance(self.patches, (tuple, list)):  # a grid tuple is for the layer; configs keep one form
                raise FlowError(f"config.patches must be a square count or 'auto', got {self.patches!r}")
            parse_patches(self.patches)
        else:
            self._at_least_one("patches")

    def attention_options(self) -> dict[str, Any]:
        """The keyword options of ``ATTENTIONS[attention]`` besides the channel counts and map size: only
        those the kind takes (iMap: ``mask``, ``mask_seed``; iTrans: also ``heads``, ``patches``,
        ``qk_channels``); empty without attention."""
        if self.attention == "none":
            return {}
        return ATTENTIONS[self.attention].select(dict(mask=self.mask, mask_seed=self.mask_seed, heads=self.heads,
                                                      patches=self.patches, qk_channels=self.qk_channels))

    def attention_layer(self, channels: int, cond_channels: int = 0,
                        size: tuple[int, int] | None = None) -> FlowLayer:
        """A new attention layer of this kind for a map of ``size = (height, width)`` (call only when
        ``attention != "none"``; ``patches="auto"`` needs ``size``)."""
        return ATTENTIONS[self.attention](channels, cond_channels=cond_channels, size=size,
                                          **self.attention_options())

    def patch_grid(self, height: int, width: int) -> tuple[int, int] | None:
        """iTrans' patch grid ``(rows, cols)`` on a ``height × width`` map (``None`` without iTrans); a
        clear error if an exact ``patches`` does not divide the map."""
        return resolve_patches(self.patches, height, width) if self.attention == "itrans" else None

    def check_attention_fits(self, channels: int, height: int, width: int) -> None:
        """Fail at build time, clearly, if iTrans cannot cut a ``height × width`` map into its patches."""
        self.patch_grid(height, width)
