r"""The one layer protocol every invertible layer follows, written once, here.

**Direction.** ``forward`` maps data towards the latent space, ``inverse`` undoes it:

* ``forward(x, cond=None) -> (y, logdet)`` with ``logdet = log|det ∂y/∂x|`` of shape ``(B,)``:
  one value per sample, never a batch mean;
* ``inverse(y, cond=None) -> x`` with ``inverse(forward(x)[0]) == x`` up to floating point (or, for
  layers whose inverse is iterative, up to the tolerance they state).

**Two words for two different things.**

* ``cond`` -- the *external* condition of a conditional flow: an LR image or its encoder features
  (SRFlow), the left Glow's activation (Full-Glow), ... It comes from outside the flow, is routed to
  each level and step by the model (:mod:`attnflow_core.models.conditioning`) and is never transformed.
* ``context`` -- the *kept half* of a multi-scale level: the part of the level's output that goes on
  to the coarser levels. Only priors take it (:mod:`attnflow_core.priors`); layers never see it.

**Rules for implementers.** A layer MUST

1. accept ``cond`` in both directions (an unconditional layer ignores it, so conditional and
   unconditional layers compose in one :class:`FlowSequence`);
2. declare ``channels`` (or ``None`` when any count is fine) and ``cond_channels`` (0 when it does
   not use ``cond``) through ``FlowLayer.__init__``, and call :meth:`FlowLayer.check_input` at the top of
   ``forward`` and ``inverse``; the base class owns the shape checks of ``x`` and ``cond``;
3. return per-sample log-dets and avoid host-device syncs inside ``forward`` (models check values once
   at their entry points);
4. set ``exact_logdet = False`` if its log-det is a stochastic estimate (residual flows) and
   ``exact_inverse = False`` if its inverse is iterative; the contract checks adapt to both flags;
5. provide :meth:`FlowLayer.examples`: small instances that the shared contract checks
   (:mod:`attnflow_core.testing`) run through round trip, float64 autograd log-det, ``cond`` matters,
   gradients reach every parameter, save/load and eval == train. Every concrete subclass defined in
   ``attnflow_core`` is registered automatically and the test suite fails for one without examples.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from .checks import check_cond, check_image
from .errors import FlowError

# every FlowLayer subclass, by qualified name (filled by FlowLayer.__init_subclass__)
LAYER_CLASSES: dict[str, type["FlowLayer"]] = {}


@dataclass(frozen=True)
class LayerExample:
    """A small instance of a layer for the contract checks: ``build()`` must give a fresh layer of the
    same architecture every call (the save/load check builds two)."""

    build: Callable[[], "FlowLayer"]
    shape: tuple[int, ...]
    cond_shape: tuple[int, ...] | None = None
    input_scale: float = 1.0
    # parameters that by construction get no gradient in this configuration (say why where it is set)
    dead_params: tuple[str, ...] = ()


class FlowLayer(nn.Module):
    """Base class of all invertible layers (the module docstring states the contract)."""

    exact_logdet: ClassVar[bool] = True
    exact_inverse: ClassVar[bool] = True
    # a non-empty reason exempts a class from the contract checks (e.g. a generic container whose
    # subclasses carry the examples); every other concrete class must provide examples()
    contract_exempt: ClassVar[str] = ""

    def __init__(self, channels: int | None = None, cond_channels: int = 0) -> None:
        super().__init__()
        if channels is not None and int(channels) < 1:
            raise FlowError(f"{type(self).__name__} needs at least one channel, got {channels}")
        if int(cond_channels) < 0:
            raise FlowError(f"{type(self).__name__}: cond_channels must be >= 0, got {cond_channels}")
        self.channels = None if channels is None else int(channels)
        self.cond_channels = int(cond_channels)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_CLASSES[f"{cls.__module__}.{cls.__qualname__}"] = cls

    def check_input(self, x: Tensor, cond: Tensor | None = None) -> None:
        """Shape checks of ``x`` (and of ``cond`` for a conditional layer); no host sync."""
        name = type(self).__name__
        check_image(x, self.channels, f"{name} input")
        check_cond(cond, self.cond_channels, x, name)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        """Named small instances for the contract checks (see the module docstring)."""
        return {}

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class FlowSequence(FlowLayer):
    """Composition ``f_n ∘ ... ∘ f_1``; the log-determinants add up; every layer gets the same ``cond``."""

    contract_exempt = "a generic container: checked through its subclasses (FlowStep) and every model test"

    def __init__(self, layers: Iterable[FlowLayer] = ()) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @property
    def exact_logdet(self) -> bool:  # type: ignore[override]
        return all(layer.exact_logdet for layer in self.layers)

    @property
    def exact_inverse(self) -> bool:  # type: ignore[override]
        return all(layer.exact_inverse for layer in self.layers)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y, cond)
        return y

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> FlowLayer:
        return self.layers[i]


def registered_layers(package: str = "attnflow_core") -> dict[str, type[FlowLayer]]:
    """Every concrete FlowLayer class defined under ``package`` (private ``_Names`` left out).

    Import the subpackages first (``import attnflow_core`` does) so that their classes are defined.
    """
    return {k: c for k, c in LAYER_CLASSES.items()
            if c.__module__.startswith(package + ".") and not c.__name__.startswith("_")}

