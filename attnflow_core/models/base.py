r"""What every density model of the package shares, and the multi-scale engine of Glow-like flows.

:class:`DensityFlow` -- the model API the notebooks and the trainer drive:
``log_prob(x, cond=None)`` (continuous ``x`` in model space), ``bits_per_dim(x_uint8, cond=None)``,
``sample(n, temperature, cond=None)``, ``to_uint8``, ``num_parameters``.

:class:`MultiScaleFlow` -- the engine, built from a list of :class:`Level` descriptions (each: its
:class:`~attnflow_core.core.FlowSequence`, the channels ``keep`` that continue, its prior); it infers
every shape. After level ``l`` the first ``keep[l]`` channels continue (the *context* of that level's
prior), the rest is the latent ``z_l`` with density ``priors[l](z_l | context)``; ``keep[l] = 0`` marks
the top level (all of its output is latent). The external ``cond`` reaches each layer through the model's
:class:`~attnflow_core.models.conditioning.Conditioner`; priors see only their context. Each family is a
builder of its levels (:mod:`.multiscale`, :mod:`.srflow`, :mod:`.fullglow_parts`, :mod:`.resflow`).

Data conventions: model space is ``[-0.5, 0.5]``; ``bits_per_dim`` takes ``b``-bit images (uint8 or
integer-valued floats in 0..255: ``b = 8``; any other integer dtype only with its bit depth declared,
``bits=b``, never read as if 8-bit) and dequantises them with uniform noise:
:math:`\tilde x = (x + u)/2^b - 1/2`, :math:`u \sim U(0,1)^D`, and
:math:`\mathrm{bpd} = -(\log p(\tilde x) - D \log 2^b) / (D \ln 2)`.

One sampling signature for every family, ``sample(n, temperature=1.0, cond=None)``, with the entry checks
(the conditional families add theirs through :meth:`DensityFlow._check_sample_cond`): an integer ``n >= 1``,
a finite ``temperature >= 0``, a condition of batch ``n``. *Deprecated*, kept for old callers
(``repro.tables.table5_cityscapes``): a conditional model's ``sample(cond, τ)``, one sample per condition.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..core.checks import check_8bit, check_bit_depth, check_finite, check_image, mark_dequantized
from ..core.errors import FlowError, NonFiniteError
from ..core.layer import FlowLayer, FlowSequence
from ..core.ops import count_parameters
from ..flows.glow import Squeeze
from ..priors import Prior
from .conditioning import Conditioner, PooledConditioner


class DensityFlow(nn.Module):
    """Base of whole models: subclasses set ``image_shape`` and implement ``log_prob`` and ``sample``."""

    image_shape: tuple[int, int, int]
    cond_channels: int = 0

    @property
    def dims(self) -> int:
        return int(math.prod(self.image_shape))

    def _check_input(self, x: Tensor, cond: Any) -> None:
        check_image(x, self.image_shape[0], "model input")
        if tuple(x.shape[1:]) != tuple(self.image_shape):
            raise FlowError(f"model input has shape {tuple(x.shape[1:])} per sample, "
                            f"the model was built for {tuple(self.image_shape)}")
        if self.cond_channels and cond is None:
            raise FlowError(f"this model is conditional (cond_channels={self.cond_channels}); pass cond")
        if isinstance(cond, Tensor) and cond.shape[0] != x.shape[0]:
            raise FlowError(f"cond has batch size {cond.shape[0]} but the input has {x.shape[0]}")
        if not torch.is_floating_point(x):
            raise FlowError(f"model input must be a float tensor in model space [-0.5, 0.5], got dtype {x.dtype}; "
                            f"for 8-bit images use bits_per_dim (it dequantises them)")
        check_finite(x, "model input")
        if isinstance(cond, Tensor):
            check_finite(cond, "cond")

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _sample(self, n: int, temperature: float, cond: Any) -> tuple[Any, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def _check_sample_cond(self, cond: Any, n: int) -> None:
        """A conditional family's checks of the condition ``sample`` was given (shapes, dtype, range)."""
        if self.cond_channels and cond is None:
            raise FlowError(f"{type(self).__name__} is conditional (cond_channels={self.cond_channels}): "
                            f"pass cond to sample")

    def _check_temperature(self, temperature: Any) -> float:
        """A sampling temperature: a finite number ``>= 0`` (returned as a float)."""
        name = type(self).__name__
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise FlowError(f"{name}.sample: temperature must be a number, got {type(temperature).__name__}")
        t = float(temperature)
        if not (math.isfinite(t) and t >= 0):
            raise FlowError(f"{name}.sample: temperature must be finite and >= 0, got {temperature}")
        return t

    def _sample_args(self, n: Any, temperature: Any, cond: Any) -> tuple[int, float, Any]:
        """The entry checks of :meth:`sample` (no tensor is read): ``n`` a positive integer (or, deprecated,
        for a conditional model, the condition batch itself); ``temperature`` finite and ``>= 0``;
        ``cond``'s batch equal to ``n``. Returns ``(n, temperature, cond)``."""
        name = type(self).__name__
        if isinstance(n, Tensor) and self.cond_channels:
            if cond is not None:
                raise FlowError(f"{name}.sample: pass the condition once, as the first argument or as cond")
            n, cond = (n.shape[0] if n.dim() else None), n
        if isinstance(cond, Tensor) and cond.dim() == 0:
            raise FlowError(f"{name}.sample: cond must be a batch tensor, got a 0-d tensor")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise FlowError(f"{name}.sample needs the number of samples n as an int, got {type(n).__name__}"
                            + (" (a condition batch is only taken by conditional models)" if isinstance(n, Tensor) else ""))
        if n < 1:
            raise FlowError(f"{name}.sample needs n >= 1 samples, got n={n}")
        t = self._check_temperature(temperature)
        if isinstance(cond, Tensor) and cond.shape[0] != n:
            raise FlowError(f"{name}.sample: cond has batch size {cond.shape[0]} but n={n} samples were asked for")
        self._check_sample_cond(cond, int(n))
        return int(n), t, cond

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, cond: Any = None) -> Tensor:
        """``n`` samples in model space (given ``cond``, a batch of ``n`` conditions, for a conditional
        model), drawn with latents scaled by ``temperature``. Deprecated form, kept for old callers: a
        conditional model's ``sample(cond, temperature)`` (one sample per condition)."""
        n, t, cond = self._sample_args(n, temperature, cond)
        return self._sample(n, t, cond)[1]

    def dequantize(self, x: Tensor, noise: bool = True, bits: int | None = None) -> Tensor:
        """``b``-bit images → model space: ``(x + u) / 2^b − 0.5`` with ``u ~ U(0, 1)`` (or ``u = 1/2``).

        ``b = bits``, 8 if not declared; an integer dtype other than uint8 needs ``bits`` (16-bit images
        stored as int32 must not be scored as 8-bit ones), and its values must lie in ``0..2^b − 1``."""
        dtype = next((p.dtype for p in self.parameters() if p.is_floating_point()), torch.get_default_dtype())
        b = check_bit_depth(x, bits, "image batch")
        if not torch.is_floating_point(x):  # integer images (range checked above if not uint8 at 8 bits)
            x = x.to(dtype)
        elif b == 8:
            check_8bit(x, "8-bit image batch")  # one host sync, here at the entry point
        u = torch.rand_like(x) if noise else torch.full_like(x, 0.5)
        # finite and in model space by construction: log_prob's input checks need not read it
        return mark_dequantized((x + u) / float(2 ** b) - 0.5)

    def bits_per_dim(self, x: Tensor, cond: Any = None, noise: bool = True, bits: int | None = None) -> Tensor:
        """Per-sample bits/dim of ``b``-bit images (``b = bits``, default 8): ``−(log p(x̃) − D log 2^b) / (D ln 2)``."""
        # subclasses' dequantize may predate ``bits``: pass it only when declared
        xm = self.dequantize(x, noise) if bits is None else self.dequantize(x, noise, bits=bits)
        return self.bits_from_log_prob(self.log_prob(xm, cond), self.dims, 8 if bits is None else bits)

    @staticmethod
    def bits_from_log_prob(lp: Tensor, dims: int, bits: int = 8) -> Tensor:
        """``−(lp − D log 2^b) / (D ln 2)``: bits/dim of ``b``-bit data whose dequantised density is ``lp``."""
        return -(lp - dims * math.log(2.0 ** bits)) / (dims * math.log(2.0))

    @staticmethod
    def to_uint8(x: Tensor) -> Tensor:
        """Model space → 8-bit images (clamped)."""
        return torch.clamp(torch.floor((x + 0.5) * 256.0), 0, 255).to(torch.uint8)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def training_hooks(self, total_steps: int) -> list:
        """Hooks ``hook(step, model, optimizer)`` the trainer must run after every optimiser step for this
        model to train as its paper says (residual flows refresh spectral norms, SRFlow unfreezes its
        encoder). The cell runner always passes them on; none by default."""
        return []

    def forward(self, x: Tensor, cond: Any = None) -> Tensor:
        return self.log_prob(x, cond)


@dataclass
class Level:
    """One level of a :class:`MultiScaleFlow`: its ``layers`` (typically squeeze → ``K`` steps), how many
    channels ``keep`` continue after it (``0``: the top level, all of its output is latent; ``None``: no
    split, all continue) and the ``prior`` of its factored-out latent (``None`` exactly when ``keep`` is)."""

    layers: FlowSequence
    keep: int | None = 0
    prior: Prior | None = None


def layer_output_shape(layer: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The per-sample shape a layer maps ``shape`` to: a :class:`~attnflow_core.flows.Squeeze` gives
    ``(4C, H/2, W/2)``, a :class:`FlowSequence` composes its layers, every other layer keeps the shape."""
    if isinstance(layer, Squeeze):
        return 4 * shape[0], shape[1] // 2, shape[2] // 2
    if isinstance(layer, FlowSequence):
        for sub in layer.layers:
            shape = layer_output_shape(sub, shape)
    return shape


class MultiScaleFlow(DensityFlow):
    """The multi-scale engine (see the module docstring), built from its :class:`Level` descriptions.

    It infers, running the shapes through each level's layers (:func:`layer_output_shape`),
    ``level_shapes`` (each level's output, what the conditioner routes to), ``latent_shapes`` (``None``
    where a level factors nothing out) and ``keep`` (0 = top; a level that does not split keeps all).

    References: the level loop of Dinh et al., "Density estimation using Real NVP", ICLR 2017 (§3.6).
    """

    def __init__(self, image_shape: tuple[int, int, int], levels: list[Level], cond_channels: int = 0,
                 conditioner: Conditioner | None = None) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.levels = nn.ModuleList([lv.layers for lv in levels])
        self.priors = nn.ModuleList([lv.prior for lv in levels])
        self.level_shapes, self.latent_shapes, self.keep = [], [], []
        shape = self.image_shape
        for i, lv in enumerate(levels):
            c, h, w = shape = layer_output_shape(lv.layers, shape)
            if (lv.keep == 0) != (i == len(levels) - 1) or (lv.keep is None) != (lv.prior is None) or not 0 <= (lv.keep or 0) < c:
                raise FlowError(f"level {i + 1} of {len(levels)} ({c} channels) has keep={lv.keep} and prior "
                                f"{type(lv.prior).__name__}: the top level (only) keeps 0, a split keeps 1..{c - 1} "
                                f"channels, a level without a prior keeps all (keep=None)")
            self.level_shapes.append(shape)
            self.keep.append(c if lv.keep is None else lv.keep)
            self.latent_shapes.append(None if lv.keep is None else (c - lv.keep, h, w))
            shape = (lv.keep or c, h, w)
        self.cond_channels = cond_channels
        self.conditioner = conditioner if conditioner is not None else PooledConditioner()

    # -- routing the condition -----------------------------------------------------------------
    def _encode_cond(self, cond: Any) -> Any:
        return None if cond is None or not self.cond_channels else self.conditioner.encode(cond)

    def _route(self, enc: Any, lvl: int, step: int | None) -> Tensor | None:
        return None if enc is None else self.conditioner.route(enc, lvl, step, self.level_shapes[lvl])

    def _level_forward(self, lvl: int, h: Tensor, enc: Any) -> tuple[Tensor, Tensor]:
        logdet = h.new_zeros(h.shape[0])
        for j, layer in enumerate(self.levels[lvl].layers):
            h, ld = layer(h, self._route(enc, lvl, j))
            logdet = logdet + ld
        return h, logdet

    def _level_inverse(self, lvl: int, h: Tensor, enc: Any) -> Tensor:
        layers = self.levels[lvl].layers
        for j in reversed(range(len(layers))):
            h = layers[j].inverse(h, self._route(enc, lvl, j))
        return h

    # -- the bijection --------------------------------------------------------------------------
    def encode(self, x: Tensor, cond: Any = None) -> tuple[list[Tensor | None], list[Tensor | None], Tensor]:
        """x → latents (one per level, finest first; ``None`` where a level factors nothing out),
        their prior contexts, and log|det ∂z/∂x| per sample."""
        self._check_input(x, cond)
        return self._encode(x, self._encode_cond(cond))

    def _encode(self, x: Tensor, enc: Any) -> tuple[list[Tensor | None], list[Tensor | None], Tensor]:
        logdet, h = x.new_zeros(x.shape[0]), x
        zs: list[Tensor | None] = []
        contexts: list[Tensor | None] = []
        for lvl, keep in enumerate(self.keep):
            h, ld = self._level_forward(lvl, h, enc)
            logdet = logdet + ld
            if 0 < keep < h.shape[1]:  # a split: the first keep channels go on, the rest is latent
                h, z = h[:, :keep], h[:, keep:]
                zs.append(z)
                contexts.append(h)
            else:  # the top level (keep = 0): all latent; a level that does not split: none
                zs.append(None if keep else h)
                contexts.append(None)
        return zs, contexts, logdet

    def decode(self, zs: list[Tensor | None], cond: Any = None) -> Tensor:
        """Exact inverse of :meth:`encode`."""
        if len(zs) != len(self.levels):
            raise FlowError(f"decode needs {len(self.levels)} latents, got {len(zs)}")
        enc = self._encode_cond(cond)
        h = zs[-1]
        for lvl in reversed(range(len(self.levels))):
            if self.keep[lvl] and zs[lvl] is not None:
                h = torch.cat([h, zs[lvl]], dim=1)
            h = self._level_inverse(lvl, h, enc)
        return h

    # -- densities -------------------------------------------------------------------------------
    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """log p(x | cond) per sample, for continuous ``x`` in model space."""
        self._check_input(x, cond)
        return self._log_prob(x, self._encode_cond(cond))

    def _log_prob(self, x: Tensor, enc: Any) -> Tensor:
        """:meth:`log_prob` with the condition already encoded: log|det| plus every prior's log density
        of its latent given its context (priors see no routed condition)."""
        zs, contexts, lp = self._encode(x, enc)
        for prior, z, ctx in zip(self.priors, zs, contexts):
            if z is not None:
                lp = lp + prior.log_prob(z, ctx)
        return lp

    # -- sampling ------------------------------------------------------------------------------
    def _sample(self, n: int, temperature: float, cond: Any) -> tuple[list[Tensor | None], Tensor]:
        """Latents drawn coarse to fine (each split prior needs the decoded kept half) and the decoded x."""
        return self._sample_encoded(self._encode_cond(cond), n, temperature)

    def _sample_encoded(self, enc: Any, n: int, temperature: float) -> tuple[list[Tensor | None], Tensor]:
        """:meth:`_sample` with the condition already encoded (to draw several temperatures from one encoding).

        Every sampling entry point of every family ends here, so this is where samples are checked: one
        host sync per call; only if the images hold NaN/Inf is the decode re-run from the same latents,
        layer by layer, to name where they first appeared (:class:`NonFiniteError`)."""
        zs, h = self._draw(enc, n, temperature)
        if not bool(torch.isfinite(h).all()):
            with torch.no_grad():
                where = self._locate_non_finite(zs, enc)
            bad = int((~torch.isfinite(h)).sum())
            raise NonFiniteError(f"sampling at temperature {temperature} gave {bad} non-finite value(s) (NaN/Inf) "
                                 f"out of {h.numel()}; they first appear {where}")
        return zs, h

    def _draw(self, enc: Any, n: int, temperature: float) -> tuple[list[Tensor | None], Tensor]:
        top = len(self.levels) - 1
        zs: list[Tensor | None] = [None] * len(self.levels)
        zs[top] = h = self.priors[top].sample((n, *self.latent_shapes[top]), None, None, temperature)
        for lvl in reversed(range(len(self.levels))):
            if lvl < top and self.latent_shapes[lvl] is not None:  # each split prior reads the kept half
                zs[lvl] = self.priors[lvl].sample((n, *self.latent_shapes[lvl]), h, None, temperature)
                h = torch.cat([h, zs[lvl]], dim=1)
            h = self._level_inverse(lvl, h, enc)
        return zs, h

    def _locate_non_finite(self, zs: list[Tensor | None], enc: Any) -> str:
        """Re-run :meth:`decode` on ``zs`` in sampling order and name the first prior or layer whose output
        holds NaN/Inf (descending into plain :class:`FlowSequence` steps to name the sub-layer)."""
        bad = lambda t: not bool(torch.isfinite(t).all())  # noqa: E731
        top, n_levels = len(self.levels) - 1, len(self.levels)

        def prior_msg(lvl: int) -> str:
            return (f"in the latents drawn by the prior of level {lvl + 1} of {n_levels} "
                    f"(priors.{lvl}, {type(self.priors[lvl]).__name__})")

        def inverse(layer: FlowLayer, h: Tensor, cond: Tensor | None, path: str) -> tuple[Tensor, str | None]:
            if type(layer).inverse is FlowSequence.inverse:  # a plain sequence: every sub-layer gets cond
                for k in reversed(range(len(layer.layers))):
                    h, where = inverse(layer.layers[k], h, cond, f"{path}.layers.{k}")
                    if where is not None:
                        return h, where
                return h, None
            h = layer.inverse(h, cond)
            return h, (f"{path} ({type(layer).__name__})" if bad(h) else None)

        h = zs[top]
        if bad(h):
            return prior_msg(top)
        for lvl in reversed(range(n_levels)):
            if lvl < top and zs[lvl] is not None:
                if bad(zs[lvl]):
                    return prior_msg(lvl)
                h = torch.cat([h, zs[lvl]], dim=1)
            layers = self.levels[lvl].layers
            for j in reversed(range(len(layers))):
                h, where = inverse(layers[j], h, self._route(enc, lvl, j), f"levels.{lvl}.layers.{j}")
                if where is not None:
                    return f"in the inverse of level {lvl + 1} of {n_levels}, layer {where}"
        return "nowhere when the decode is re-run from the same latents (a non-deterministic layer?)"

    @torch.no_grad()
    def sample_latents(self, n: int, temperature: float = 1.0, cond: Any = None) -> list[Tensor | None]:
        """Latents of ``n`` samples, drawn coarse to fine (``decode`` maps them to images)."""
        return self._sample(*self._sample_args(n, temperature, cond))[0]

