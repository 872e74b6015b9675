"""Attention registries whose entries declare their options, and the registry of the contractive family.

:class:`AttentionKind` wraps a builder with the option names it takes (read from its keyword arguments) and
where a model places the layer; calling it with an option it does not take is a :class:`FlowError` that
names the valid ones (a misspelt option is never silently dropped), and :meth:`AttentionKind.select` keeps
only its own options of a config's full set. ``attention.ATTENTIONS`` (iMap/iTrans in flow steps) and
:data:`CONTRACTIVE_ATTENTIONS` (ACF's maps inside residual branches, Zha's blocks) are both made of them.

:data:`CONTRACTIVE_ATTENTIONS`: ``"acf_l2"`` (:class:`~attnflow_core.nn.acf.L2SelfAttention`; ``heads``,
``window``) and ``"acf_dot"`` (:class:`~attnflow_core.nn.acf.LipschitzDotAttention`; ``window``) are placed
``"branch"`` (in every conv block's branch, on its ``hidden`` channels); ``"idp"`` / ``"icon"``
(:class:`~attnflow_core.nn.zha.ZhaAttention`; ``variant``, ``normalise``, ``coeff``) are placed ``"block"``
(their own residual block ``x + F(x)``).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ..core.errors import FlowError
from ..core.registry import Registry
from .acf import L2SelfAttention, LipschitzDotAttention
from .zha import ZhaAttention


class AttentionKind:
    """A registered attention: ``kind(channels, **options)`` builds it, refusing options it does not take.

    ``options``: the builder's keyword arguments after ``channels`` (its declared option set);
    ``placement``: where a model puts the layer (``"step"``, ``"branch"`` or ``"block"``)."""

    def __init__(self, name: str, build: Callable[..., nn.Module], placement: str) -> None:
        params = list(inspect.signature(build).parameters.values())[1:]
        if any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params):
            raise FlowError(f"attention {name!r}: a builder must name its options (no *args/**kwargs)")
        self.name, self.build, self.placement = name, build, placement
        self.options = tuple(p.name for p in params)

    def __call__(self, channels: int, **options: Any) -> nn.Module:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise FlowError(f"attention {self.name!r} does not take option(s) {unknown}; "
                            f"its options are {list(self.options)}")
        return self.build(channels, **options)

    def select(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``options`` (e.g. all attention fields of a config) that this kind takes."""
        return {k: v for k, v in options.items() if k in self.options}

    def __repr__(self) -> str:
        return f"AttentionKind({self.name!r}, options={self.options}, placement={self.placement!r})"


def register_kind(registry: Registry, name: str, placement: str) -> Callable[[Callable], AttentionKind]:
    """Decorator: ``@register_kind(REG, "name", "step")`` on a builder ``(channels, *, option=...)``."""
    return lambda build: registry.add(name, AttentionKind(name, build, placement))


CONTRACTIVE_ATTENTIONS: Registry[AttentionKind] = Registry("contractive attention")


@register_kind(CONTRACTIVE_ATTENTIONS, "acf_l2", "branch")
def _acf_l2(channels: int, heads: int = 1, window: int | tuple[int, int] | None = None) -> nn.Module:
    return L2SelfAttention(channels, heads=heads, window=window)


@register_kind(CONTRACTIVE_ATTENTIONS, "acf_dot", "branch")
def _acf_dot(channels: int, window: int | tuple[int, int] | None = None) -> nn.Module:
    return LipschitzDotAttention(channels, window=window)


@register_kind(CONTRACTIVE_ATTENTIONS, "idp", "block")
def _idp(channels: int, variant: str = "corrected", normalise: str | None = None, coeff: float = 0.9) -> nn.Module:
    return ZhaAttention(channels, "idp", variant, normalise, coeff)


@register_kind(CONTRACTIVE_ATTENTIONS, "icon", "block")
def _icon(channels: int, variant: str = "corrected", normalise: str | None = None, coeff: float = 0.9) -> nn.Module:
    return ZhaAttention(channels, "icon", variant, normalise, coeff)


def kinds_placed(registry: Registry, placement: str) -> tuple[str, ...]:
    """The names of ``registry`` placed at ``placement``."""
    return tuple(n for n, k in registry.items() if k.placement == placement)
