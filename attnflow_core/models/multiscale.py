"""Multi-scale backbones (Glow, mARFlow) with optional iMap/iTrans attention: the unconditional image family.

Architecture (both backbones): ``L`` levels of squeeze → ``K`` steps → split (no split after
the last level). A step is ActNorm → invertible 1×1 conv → coupling, with the attention layer
inserted at one of four positions (paper §5):

* pos-1: before ActNorm;  pos-2: after ActNorm;  pos-3: after the 1×1 conv;  pos-4: after the coupling.

Glow models each split-off half with a learned Gaussian conditioned on the kept half and the
top latent with a learned Gaussian; mARFlow replaces both with autoregressive ConvLSTM
priors over channels (:class:`~attnflow_core.priors.ARChannelPrior`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..attention import place_attention
from ..core.errors import FlowError
from ..core.layer import FlowLayer, FlowSequence, LayerExample
from ..flows.coupling import MIXLOGISTIC_FORMS, AffineCoupling, MixLogisticCoupling
from ..flows.glow import ActNorm, InvConv1x1, Squeeze
from ..priors import ARChannelPrior, LearnedGaussianPrior, Prior, SplitGaussianPrior
from .base import Level, MultiScaleFlow
from .conditioning import Conditioner
from .config import AttentionOptions
from .registry import register_family

BACKBONES = ("glow", "marflow")
COUPLINGS = ("affine", "mixlogistic")


def max_squeezes(height: int, width: int) -> int:
    """How many 2×2 squeezes an image of ``height × width`` admits (28 × 28 → 2: 28 → 14 → 7)."""
    n = 0
    while height % 2 == 0 and width % 2 == 0:
        height, width, n = height // 2, width // 2, n + 1
    return n


@dataclass
class FlowConfig(AttentionOptions):
    """Plain configuration of a multi-scale flow (all fields are JSON-friendly)."""

    family: ClassVar[str] = "multiscale"  # the model registry's key (not a field: configs without a family still load)

    backbone: str = "glow"
    image_shape: tuple[int, int, int] = (3, 32, 32)
    levels: int = 3
    steps: int = 4
    hidden: int = 96
    coupling: str = "affine"
    components: int = 32
    blocks: int = 10
    dropout: float = 0.2
    coupling_attention: bool = True
    mixlogistic_form: str = "marscf"  # where the shift goes: "marscf" (the mARFlow code's) or "flowpp" (the paper's)
    prior_hidden: int = 32
    prior_layers: int = 3
    cond_channels: int = 0

    def validate(self) -> None:
        for name, options in (("backbone", BACKBONES), ("coupling", COUPLINGS), ("mixlogistic_form", MIXLOGISTIC_FORMS)):
            self._one_of(name, options)
        self._attention_ok()
        self._image_shape_ok()
        self._at_least_one("levels", "steps", "hidden", "components", "prior_hidden", "prior_layers")
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
        self.patch_grids()  # an exact ``patches`` must divide every level's map

    def level_sizes(self) -> list[tuple[int, int]]:
        """Each level's map ``(height, width)`` after its squeeze."""
        _, h, w = self.image_shape
        return [(h >> (i + 1), w >> (i + 1)) for i in range(self.levels)]

    def patch_grids(self) -> list[tuple[int, int] | None]:
        """iTrans' resolved patch grid ``(rows, cols)`` per level (``None`` per level without iTrans):
        standard MNIST (28 × 28, 2 levels) with ``patches="auto"`` gives ``[(2, 2), (1, 1)]``."""
        return [self.patch_grid(h, w) for h, w in self.level_sizes()]


class FlowStep(FlowSequence):
    """ActNorm → InvConv1x1 → coupling, with an optional attention layer at ``position``; ``size`` is the
    level's map ``(height, width)``, from which iTrans' ``patches="auto"`` picks its grid.

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018 (the step); Sukthanker et al., "Generative Flows
    with Invertible Attentions", CVPR 2022 (§5: attention positions pos-1 … pos-4).
    """

    contract_exempt = ""  # a concrete step: it carries its own examples

    def __init__(self, channels: int, cfg: FlowConfig, size: tuple[int, int] | None = None) -> None:
        cc = cfg.cond_channels
        if cfg.coupling == "affine":
            coupling: FlowLayer = AffineCoupling(channels, cfg.hidden, cond_channels=cc)
        else:
            coupling = MixLogisticCoupling(channels, cfg.hidden, cfg.components, cfg.blocks, cfg.dropout,
                                           cond_channels=cc, attention=cfg.coupling_attention, form=cfg.mixlogistic_form)
        layers: list[FlowLayer] = [ActNorm(channels), InvConv1x1(channels), coupling]
        if cfg.attention != "none":
            place_attention(layers, cfg.attention_layer(channels, cc, size), cfg.position)
        super().__init__(layers)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        def step(**kw: Any) -> "FlowStep":
            return cls(4, FlowConfig(image_shape=(4, 8, 8), hidden=8, heads=2, **kw))

        return {"step_affine": LayerExample(step, (2, 4, 4, 4)),
                "step_itrans_pos2": LayerExample(lambda: step(attention="itrans", position=2), (2, 4, 4, 4)),
                "step_itrans_auto_3x3": LayerExample(  # "auto" on a 3×3 map: a 1×1 grid (iTrans' dead q/k)
                    lambda: cls(4, FlowConfig(image_shape=(1, 6, 6), hidden=8, heads=1, attention="itrans",
                                              patches="auto", position=2), (3, 3)), (2, 4, 3, 3),
                    dead_params=tuple(f"layers.1.{n}" for n in ("query.weight", "query.bias", "key.weight",
                                                                 "key.bias", "temperature"))),
                "step_imap_cond": LayerExample(lambda: step(attention="imap", cond_channels=2), (2, 4, 4, 4),
                                               (2, 2, 4, 4))}


class FlowModel(MultiScaleFlow):
    """Glow / mARFlow / AttnFlow: ``L`` levels of squeeze → ``K`` steps → split, with Glow's learned
    priors or mARFlow's autoregressive ones (the module docstring has the layout).

    ``conditioner`` decides what each level/step sees of ``cond`` (default: ``cond`` average-pooled to
    each level, see :mod:`attnflow_core.models.conditioning`).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018; Mahajan et al., "Normalizing flows with multiscale
    autoregressive priors", CVPR 2020; Sukthanker et al., "Generative Flows with Invertible Attentions",
    CVPR 2022.
    """

    def __init__(self, config: FlowConfig | Mapping[str, Any], conditioner: Conditioner | None = None) -> None:
        cfg = config if isinstance(config, FlowConfig) else FlowConfig.from_dict(config)
        cfg.validate()
        kernels, dilations = [5, 5] + [3] * 16, [2] + [1] * 17  # mARFlow's prior, by level
        levels, (c, h, w) = [], cfg.image_shape
        for lvl in range(cfg.levels):
            c, h, w = 4 * c, h // 2, w // 2
            layers = FlowSequence([Squeeze()] + [FlowStep(c, cfg, (h, w)) for _ in range(cfg.steps)])
            keep = 0 if lvl == cfg.levels - 1 else c // 2  # the top level's output is all latent
            if cfg.backbone == "glow":
                prior: Prior = SplitGaussianPrior(keep, c - keep) if keep else LearnedGaussianPrior(c)
            else:
                prior = ARChannelPrior(c - keep, keep, cfg.prior_hidden, cfg.prior_layers, kernels[lvl], dilations[lvl])
            levels.append(Level(layers, keep, prior))
            c = keep
        super().__init__(cfg.image_shape, levels, cfg.cond_channels, conditioner)
        self.config = cfg
        self.patch_grids = cfg.patch_grids()  # iTrans' (rows, cols) per level, None without iTrans


def paper_config(backbone: str = "marflow", attention: str = "none", levels: int = 3, steps: int = 4,
                 hidden: int = 96, image_shape: tuple[int, int, int] = (3, 32, 32), **kw: Any) -> FlowConfig:
    """The paper's unconditional setting: mARFlow with mixture-logistic couplings (Tables 2–3)."""
    return FlowConfig(backbone=backbone, attention=attention, levels=levels, steps=steps, hidden=hidden,
                      image_shape=image_shape, coupling=kw.pop("coupling", "mixlogistic"), **kw)


register_family("multiscale", FlowConfig, FlowModel)
