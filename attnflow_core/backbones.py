"""Multi-scale backbones (Glow, mARFlow) with optional iMap/iTrans attention, and the model API.

Architecture (both backbones): ``L`` levels of squeeze → ``K`` steps → split (no split after
the last level). A step is ActNorm → invertible 1×1 conv → coupling, with the attention layer
inserted at one of four positions (paper §5):

* pos-1: before ActNorm;  pos-2: after ActNorm;  pos-3: after the 1×1 conv;  pos-4: after the coupling.

Glow models each split-off half with a learned Gaussian conditioned on the kept half and the
top latent with a learned Gaussian; mARFlow replaces both with autoregressive ConvLSTM
priors over channels (:class:`~attnflow_core.priors.ARChannelPrior`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import ATTENTION_KINDS, POSITIONS, IMap, ITrans
from .base import FlowError, FlowLayer, FlowSequence, check_finite, check_image, count_parameters
from .coupling import AffineCoupling, MixLogisticCoupling
from .layers import ActNorm, InvConv1x1, Squeeze
from .masks import MASK_KINDS
from .priors import ARChannelPrior, LearnedGaussianPrior, SplitGaussianPrior

BACKBONES = ("glow", "marflow")
COUPLINGS = ("affine", "mixlogistic")


def max_squeezes(height: int, width: int) -> int:
    """How many 2×2 squeezes an image of ``height × width`` admits (28 × 28 → 2: 28 → 14 → 7)."""
    n = 0
    while height % 2 == 0 and width % 2 == 0:
        height, width, n = height // 2, width // 2, n + 1
    return n


@dataclass
class FlowConfig:
    """Plain configuration of a multi-scale flow (all fields are JSON-friendly)."""

    backbone: str = "glow"
    image_shape: tuple[int, int, int] = (3, 32, 32)
    levels: int = 3
    steps: int = 4
    hidden: int = 96
    coupling: str = "affine"
    attention: str = "none"
    position: int = 4
    heads: int = 5
    patches: int = 4
    mask: str = "checkerboard"
    mask_seed: int = 0
    qk_channels: int | None = None
    components: int = 32
    blocks: int = 10
    dropout: float = 0.2
    coupling_attention: bool = True
    prior_hidden: int = 32
    prior_layers: int = 3
    cond_channels: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FlowConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise FlowError(f"unknown model config key(s) {sorted(unknown)}; known: {sorted(names)}")
        d = dict(d)
        if "image_shape" in d:
            d["image_shape"] = tuple(int(v) for v in d["image_shape"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    def validate(self) -> None:
        def one_of(name: str, value: Any, options: tuple) -> None:
            if value not in options:
                raise FlowError(f"config.{name}={value!r} is not one of {options}")

        one_of("backbone", self.backbone, BACKBONES)
        one_of("coupling", self.coupling, COUPLINGS)
        one_of("attention", self.attention, ATTENTION_KINDS)
        one_of("position", self.position, POSITIONS)
        one_of("mask", self.mask, MASK_KINDS)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise FlowError(f"config.image_shape must be (C, H, W), got {self.image_shape}")
        for name in ("levels", "steps", "hidden", "heads", "patches", "components", "prior_hidden", "prior_layers"):
            if int(getattr(self, name)) < 1:
                raise FlowError(f"config.{name} must be at least 1, got {getattr(self, name)}")
        if self.blocks < 0 or not 0 <= self.dropout < 1:
            raise FlowError("config.blocks must be >= 0 and config.dropout in [0, 1)")
        _, h, w = self.image_shape
        n = max_squeezes(h, w)
        if self.levels > n:
            trail = [h >> i for i in range(n + 1)]
            raise FlowError(
                f"an image of {h}×{w} cannot be squeezed {self.levels} times "
                f"(heights {' → '.join(map(str, trail))} → odd); use fewer levels or pad the images "
                f"(e.g. MNIST to 32×32, the backbone's convention)")


class FlowStep(FlowSequence):
    """ActNorm → InvConv1x1 → coupling, with an optional attention layer at ``position``."""

    def __init__(self, channels: int, cfg: FlowConfig) -> None:
        cc = cfg.cond_channels
        if cfg.coupling == "affine":
            coupling: FlowLayer = AffineCoupling(channels, cfg.hidden, cond_channels=cc)
        else:
            coupling = MixLogisticCoupling(channels, cfg.hidden, cfg.components, cfg.blocks, cfg.dropout,
                                           cond_channels=cc, attention=cfg.coupling_attention)
        layers: list[FlowLayer] = [ActNorm(channels), InvConv1x1(channels), coupling]
        if cfg.attention != "none":
            if cfg.attention == "imap":
                attn: FlowLayer = IMap(channels, mask=cfg.mask, cond_channels=cc, mask_seed=cfg.mask_seed)
            else:
                attn = ITrans(channels, heads=cfg.heads, patches=cfg.patches, mask=cfg.mask,
                              qk_channels=cfg.qk_channels, cond_channels=cc, mask_seed=cfg.mask_seed)
            layers.insert(cfg.position - 1, attn)
        super().__init__(layers)


class FlowModel(nn.Module):
    """A multi-scale normalizing flow with a latent prior: the object the notebooks drive.

    Data conventions: ``log_prob`` and ``encode`` take continuous images in model space
    ``[-0.5, 0.5]``; ``bits_per_dim`` takes 8-bit images (uint8, or integer-valued floats in
    0..255) and dequantises them with uniform noise, counting ``−log 256`` per dimension.
    """

    def __init__(self, config: FlowConfig | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = config if isinstance(config, FlowConfig) else FlowConfig.from_dict(config)
        cfg.validate()
        self.config = cfg
        c, h, w = cfg.image_shape
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        self.latent_shapes: list[tuple[int, int, int]] = []
        self.level_shapes: list[tuple[int, int, int]] = []
        kernels, dilations = [5, 5] + [3] * 16, [2] + [1] * 17  # mARFlow's prior, by level
        for lvl in range(cfg.levels):
            c, h, w = 4 * c, h // 2, w // 2
            self.level_shapes.append((c, h, w))
            if cfg.attention == "itrans":
                ITrans(c, patches=cfg.patches)._patch_shape(h, w)  # fail at build time, clearly
            self.levels.append(FlowSequence([Squeeze()] + [FlowStep(c, cfg) for _ in range(cfg.steps)]))
            last = lvl == cfg.levels - 1
            keep = c if last else c // 2
            out = c - keep if not last else c
            if cfg.backbone == "glow":
                prior: nn.Module = LearnedGaussianPrior(c) if last else SplitGaussianPrior(keep, out)
            else:
                prior = ARChannelPrior(out, 0 if last else keep, cfg.prior_hidden, cfg.prior_layers,
                                       kernels[lvl], dilations[lvl])
            self.priors.append(prior)
            self.latent_shapes.append((out, h, w))
            c = keep
        self.dims = int(math.prod(cfg.image_shape))

    # -- checks ------------------------------------------------------------------------
    def _check_input(self, x: Tensor, cond: Tensor | None) -> None:
        check_image(x, self.config.image_shape[0], "model input")
        if tuple(x.shape[1:]) != tuple(self.config.image_shape):
            raise FlowError(f"model input has shape {tuple(x.shape[1:])} per sample, "
                            f"the model was built for {tuple(self.config.image_shape)}")
        if self.config.cond_channels and cond is None:
            raise FlowError(f"this model is conditional (cond_channels={self.config.cond_channels}); pass cond")

    def _cond_at(self, cond: Tensor | None, h: int, w: int) -> Tensor | None:
        if cond is None or self.config.cond_channels == 0:
            return None
        return cond if cond.shape[-2:] == (h, w) else F.adaptive_avg_pool2d(cond, (h, w))

    # -- the bijection -------------------------------------------------------------------
    def encode(self, x: Tensor, cond: Tensor | None = None) -> tuple[list[Tensor], list[Tensor | None], Tensor]:
        """x → latents (one per level, finest first), their prior contexts, and log|det ∂z/∂x|."""
        self._check_input(x, cond)
        logdet = x.new_zeros(x.shape[0])
        zs: list[Tensor] = []
        contexts: list[Tensor | None] = []
        h = x
        for lvl, level in enumerate(self.levels):
            c, hh, ww = self.level_shapes[lvl]
            h, ld = level(h, self._cond_at(cond, hh, ww))
            logdet = logdet + ld
            if lvl < len(self.levels) - 1:
                keep = c // 2
                h, z = h[:, :keep], h[:, keep:]
                zs.append(z)
                contexts.append(h)
            else:
                zs.append(h)
                contexts.append(None)
        return zs, contexts, logdet

    def decode(self, zs: list[Tensor], cond: Tensor | None = None) -> Tensor:
        """Exact inverse of :meth:`encode`."""
        if len(zs) != len(self.levels):
            raise FlowError(f"decode needs {len(self.levels)} latents, got {len(zs)}")
        h = zs[-1]
        for lvl in reversed(range(len(self.levels))):
            c, hh, ww = self.level_shapes[lvl]
            if lvl < len(self.levels) - 1:
                h = torch.cat([h, zs[lvl]], dim=1)
            h = self.levels[lvl].inverse(h, self._cond_at(cond, hh, ww))
        return h

    # -- densities ---------------------------------------------------------------------
    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """log p(x) per sample, for continuous ``x`` in model space."""
        zs, contexts, logdet = self.encode(x, cond)
        lp = logdet
        for prior, z, ctx in zip(self.priors, zs, contexts):
            lp = lp + prior.log_prob(z, ctx)
        return lp

    def dequantize(self, x: Tensor, noise: bool = True) -> Tensor:
        """8-bit images → model space: ``(x + u) / 256 − 0.5`` with ``u ~ U(0, 1)`` (or ``u = 1/2``)."""
        if x.dtype == torch.uint8:
            x = x.float()
        elif not torch.is_floating_point(x):
            x = x.to(torch.get_default_dtype())
        else:
            check_finite(x, "8-bit image batch")
            if bool((x < 0).any() or (x > 255).any()):
                raise FlowError(f"bits_per_dim expects 8-bit images with values in 0..255, got range "
                                f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; pass uint8 data, not model-space data")
        u = torch.rand_like(x) if noise else torch.full_like(x, 0.5)
        return (x + u) / 256.0 - 0.5

    def bits_per_dim(self, x: Tensor, cond: Tensor | None = None, noise: bool = True) -> Tensor:
        """Per-sample bits/dim of 8-bit images: ``−(log p(x̃) − D log 256) / (D ln 2)``."""
        xm = self.dequantize(x, noise)
        lp = self.log_prob(xm, cond) - self.dims * math.log(256.0)
        return -lp / (self.dims * math.log(2.0))

    # -- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample_latents(self, n: int, temperature: float = 1.0, cond: Tensor | None = None) -> list[Tensor]:
        """Draw latents coarse to fine (each split prior needs the decoded kept half)."""
        p = next(self.parameters())
        zs: list[Tensor] = [p.new_empty(0)] * len(self.levels)
        top = len(self.levels) - 1
        zs[top] = self.priors[top].sample(None, (n, *self.latent_shapes[top]), temperature)
        h = zs[top]
        for lvl in reversed(range(len(self.levels))):
            c, hh, ww = self.level_shapes[lvl]
            if lvl < top:
                zs[lvl] = self.priors[lvl].sample(h, (n, *self.latent_shapes[lvl]), temperature)
                h = torch.cat([h, zs[lvl]], dim=1)
            h = self.levels[lvl].inverse(h, self._cond_at(cond, hh, ww))
        return zs

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, cond: Tensor | None = None) -> Tensor:
        """``n`` samples in model space, drawn with latents scaled by ``temperature``."""
        if n < 1:
            raise FlowError(f"sample needs n >= 1, got {n}")
        if not temperature >= 0:
            raise FlowError(f"temperature must be >= 0, got {temperature}")
        return self.decode(self.sample_latents(n, temperature, cond), cond)

    @staticmethod
    def to_uint8(x: Tensor) -> Tensor:
        """Model space → 8-bit images (clamped)."""
        return torch.clamp(torch.floor((x + 0.5) * 256.0), 0, 255).to(torch.uint8)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.log_prob(x, cond)


def build_model(config: FlowConfig | Mapping[str, Any] | None = None, **overrides: Any) -> FlowModel:
    """Build a :class:`FlowModel` from a config (dict or :class:`FlowConfig`) plus keyword overrides."""
    base = config.to_dict() if isinstance(config, FlowConfig) else dict(config or {})
    base.update(overrides)
    return FlowModel(FlowConfig.from_dict(base))


def paper_config(backbone: str = "marflow", attention: str = "none", levels: int = 3, steps: int = 4,
                 hidden: int = 96, image_shape: tuple[int, int, int] = (3, 32, 32), **kw: Any) -> FlowConfig:
    """The paper's unconditional setting: mARFlow with mixture-logistic couplings (Tables 2–3)."""
    return FlowConfig(backbone=backbone, attention=attention, levels=levels, steps=steps, hidden=hidden,
                      image_shape=image_shape, coupling=kw.pop("coupling", "mixlogistic"), **kw)
