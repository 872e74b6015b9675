"""The model registry: ``build_model(config)`` dispatches on the config's model family.

A family registers ``(config class, builder)``: the config class has ``from_dict`` / ``to_dict`` and a
class attribute ``family``; the builder takes a config instance and returns a model. A config given as
a dict names its family under the key ``"family"`` (default ``"multiscale"``, the Glow / mARFlow
/ AttnFlow family, so configs written without a family still load).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..core.errors import FlowError
from ..core.registry import Registry

DEFAULT_FAMILY = "multiscale"


@dataclass(frozen=True)
class ModelFamily:
    name: str
    config_cls: type
    build: Callable[[Any], nn.Module]


MODELS: Registry[ModelFamily] = Registry("model family")


def register_family(name: str, config_cls: type, build: Callable[[Any], nn.Module]) -> None:
    MODELS.add(name, ModelFamily(name, config_cls, build))


def make_config(config: Any = None, **overrides: Any) -> Any:
    """A config instance of the right family from a dict or a config instance, plus keyword overrides."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        family = getattr(type(config), "family", DEFAULT_FAMILY)
        base = config.to_dict()
    elif config is None or isinstance(config, Mapping):
        base = dict(config or {})
        family = base.pop("family", DEFAULT_FAMILY)
    else:
        raise FlowError(f"a model config must be a dict or a config object, got {type(config).__name__}")
    base.update(overrides)
    family = base.pop("family", family)
    return MODELS[family].config_cls.from_dict(base)


def build_model(config: Any = None, **overrides: Any) -> nn.Module:
    """Build a model from a config (dict or config instance) plus keyword overrides.

    >>> build_model({"levels": 2, "steps": 1, "image_shape": (1, 8, 8)})  # doctest: +SKIP
    """
    cfg = make_config(config, **overrides)
    return MODELS[type(cfg).family].build(cfg)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as a JSON-friendly dict that names its family (the inverse of :func:`make_config`)."""
    d = config.to_dict()
    family = getattr(type(config), "family", DEFAULT_FAMILY)
    if family != DEFAULT_FAMILY:
        d["family"] = family
    return d
