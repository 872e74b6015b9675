r"""The parts of Full-Glow: its flow step, a Glow "tower" (levels of squeeze → K steps → split with
Full-Glow's priors), the left tower that hands out its activations, and the conditioner that routes
them to the right tower.

**Routing (why a conditioner).** Right-Glow step ``(l, k)`` reads the activations of left-Glow step
``(l, k)``: its ActNorm output (for the right ActNorm), its 1×1-conv output (for the right 1×1 conv), its
step output (for the right coupling), and, for an attention layer placed before the ActNorm (pos-1), its
step input. This is per-level, per-step routing of an encoded condition, which is what
:class:`~attnflow_core.models.conditioning.Conditioner` is for: :class:`LeftGlowConditioner` encodes the
label map once per pass by running the left Glow (which also yields its log-likelihood for the loss), and
``route(encoded, level, step)`` hands right step ``step`` the activations of the matching left step,
**concatenated along channels** into one ``cond`` tensor. A concatenated tensor (rather than a tuple)
keeps the layer contract unchanged: ``cond`` is a shape-checked ``(B, n·C_left, H, W)`` tensor, and the
shared contract checks (round trip, autograd log-det, cond matters, ...) run on the step as they are.
:class:`FullGlowStep` splits it again and gives each layer its part. The cost is one concatenation per
step. Sampling and decoding run the left Glow forward on the label map (left activations are computed in
the forward direction only) and visit the right steps in reverse, which reverses the routing with no
list reversal to get wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..attention import ATTENTIONS, place_attention
from ..core.layer import FlowLayer, FlowSequence, LayerExample
from ..flows.fullglow import CondActNorm, CondInvConv1x1, FullGlowActNorm, FullGlowCoupling
from ..flows.glow import InvConv1x1, Squeeze
from ..priors.fullglow import OnesPadSplitPrior, OnesPadTopPrior
from .base import Level, MultiScaleFlow
from .conditioning import Conditioner, Shape

PARTS = ("in", "act", "w", "out")  # step input, ActNorm output, 1×1 output, step output
ATTENTION_PART = {1: "in", 2: "act", 3: "w", 4: "out"}  # what an attention at pos-p sees of the left step


class FullGlowStep(FlowSequence):
    r"""One Full-Glow step: ActNorm → LU 1×1 conv → affine coupling, plus an optional iMap/iTrans layer at
    ``position`` (1: before the ActNorm, 2: after it, 3: after the 1×1 conv, 4: after the coupling).

    Unconditional (``cond_channels=0``, the left Glow): :class:`~attnflow_core.flows.fullglow.FullGlowActNorm`,
    :class:`~attnflow_core.flows.InvConv1x1`, :class:`~attnflow_core.flows.fullglow.FullGlowCoupling`.
    Conditional (the right Glow): the conditional ActNorm / 1×1 conv / coupling, each reading its part of
    ``cond``, the channel concatenation of the matching left activations in the order of :attr:`parts`
    (``act``, ``w``, ``out``; ``in`` first when the attention sits at pos-1). An attention layer reads the
    left activation at the same point of the left step.
    Log-det: the sum of the layers' per-sample log-dets.

    References: Sorkhei et al., "Full-Glow: Fully conditional Glow for more realistic image generation",
    GCPR 2021; Sukthanker et al., "Generative Flows with Invertible Attentions", CVPR 2022 (cAttnFlow).
    """

    contract_exempt = ""

    def __init__(self, channels: int, height: int, width: int, cond_channels: int = 0, hidden: int = 512,
                 cond_hidden: int = 128, attention: str = "none", position: int = 4, **attn: Any) -> None:
        cc = cond_channels
        if cc:
            layers: list[FlowLayer] = [CondActNorm(channels, cc, height, width),
                                       CondInvConv1x1(channels, cc, height, width),
                                       FullGlowCoupling(channels, hidden, cc, cond_hidden)]
        else:
            layers = [FullGlowActNorm(channels), InvConv1x1(channels), FullGlowCoupling(channels, hidden)]
        keys = ["act", "w", "out"]
        if attention != "none":
            # the map size resolves iTrans' patch grid (patches="auto") and fails clearly if it cannot
            i = place_attention(layers, ATTENTIONS[attention](channels, cond_channels=cc, size=(height, width), **attn),
                                position)
            keys.insert(i, ATTENTION_PART[position])
        super().__init__(layers)
        self.channels = channels
        self.part_channels = cc
        self.parts = tuple(p for p in PARTS if p in keys) if cc else ()
        self.cond_channels = cc * len(self.parts)
        self.keys = keys
        self.i_act, self.i_w = keys.index("act"), keys.index("w")

    def _split(self, cond: Tensor | None) -> list[Tensor | None]:
        if not self.parts:
            return [None] * len(self.layers)
        chunks = dict(zip(self.parts, torch.split(cond, self.part_channels, dim=1)))
        return [chunks[k] for k in self.keys]

    def forward_parts(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Forward pass that also returns the step's activations ``{"in", "act", "w", "out"}``."""
        self.check_input(x, cond)
        parts = {"in": x}
        logdet = x.new_zeros(x.shape[0])
        for i, (layer, c) in enumerate(zip(self.layers, self._split(cond))):
            x, ld = layer(x, c)
            logdet = logdet + ld
            if i == self.i_act:
                parts["act"] = x
            elif i == self.i_w:
                parts["w"] = x
        parts["out"] = x
        return x, logdet, parts

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, logdet, _ = self.forward_parts(x, cond)
        return y, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        for layer, c in zip(reversed(self.layers), reversed(self._split(cond))):
            y = layer.inverse(y, c)
        return y

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        def step(**kw: Any) -> "FullGlowStep":
            return cls(4, 6, 6, hidden=8, cond_hidden=6, **kw)

        return {"fullglow_left": LayerExample(step, (2, 4, 6, 6)),
                "fullglow_right": LayerExample(lambda: step(cond_channels=3), (2, 4, 6, 6), (2, 9, 6, 6)),
                "fullglow_right_imap_pos1": LayerExample(lambda: step(cond_channels=2, attention="imap", position=1),
                                                         (2, 4, 6, 6), (2, 8, 6, 6)),
                "fullglow_right_itrans_pos4": LayerExample(
                    lambda: step(cond_channels=2, attention="itrans", position=4, heads=2, patches=4),
                    (2, 4, 6, 6), (2, 6, 6, 6))}


def tower_shapes(image_shape: tuple[int, int, int], levels: int) -> list[tuple[int, int, int]]:
    """Per-level shapes after the squeeze: ``C·4, H/2, W/2``, then half the channels continue."""
    c, h, w = image_shape
    shapes = []
    for lvl in range(levels):
        c, h, w = 4 * c, h // 2, w // 2
        shapes.append((c, h, w))
        c = c // 2
    return shapes


class GlowTower(MultiScaleFlow):
    """One of Full-Glow's two Glows: ``levels`` × (squeeze → ``steps`` × :class:`FullGlowStep` → split),
    Full-Glow's priors (:mod:`attnflow_core.priors.fullglow`). ``cond_channels[l]`` is what each step of
    level ``l`` reads per part (0: unconditional, the left Glow); ``model_cond_channels`` is the channel
    count of the model's own ``cond`` (the label map, for the right Glow), read by ``conditioner``.

    References: Sorkhei et al., "Full-Glow", GCPR 2021; Kingma & Dhariwal, "Glow", NeurIPS 2018.
    """

    def __init__(self, image_shape: tuple[int, int, int], levels: int, steps: int, hidden: int,
                 cond_channels: list[int] | None = None, cond_hidden: int = 128, model_cond_channels: int = 0,
                 conditioner: Conditioner | None = None, **step_kw: Any) -> None:
        cc = cond_channels or [0] * levels
        tower = []
        for lvl, (c, h, w) in enumerate(tower_shapes(tuple(image_shape), levels)):
            layers = FlowSequence([Squeeze()] + [FullGlowStep(c, h, w, cc[lvl], hidden, cond_hidden, **step_kw)
                                                 for _ in range(steps)])
            top = lvl == levels - 1
            tower.append(Level(layers, 0, OnesPadTopPrior(c)) if top else
                         Level(layers, c // 2, OnesPadSplitPrior(c // 2, c - c // 2)))
        super().__init__(image_shape, tower, model_cond_channels, conditioner)


@dataclass
class LeftPass:
    """What the left Glow gives the right one: per level, per step, its activations, and its own
    log-likelihood of the label map (per sample) for the joint loss."""

    parts: list[list[dict[str, Tensor]]]
    log_prob: Tensor


class LeftGlow(GlowTower):
    """The left (unconditional) Glow over the label map, able to hand out its per-step activations.

    References: Sorkhei et al., "Full-Glow", GCPR 2021 (the left Glow of the two-Glow architecture).
    """

    def forward_parts(self, x: Tensor) -> LeftPass:
        """log p(x) per sample and every step's activations (one forward pass)."""
        parts: list[list[dict[str, Tensor]]] = []
        lp = x.new_zeros(x.shape[0])
        h = x
        for lvl, seq in enumerate(self.levels):
            h, _ = seq.layers[0](h)  # squeeze
            level_parts = []
            for step in seq.layers[1:]:
                h, ld, p = step.forward_parts(h)
                lp = lp + ld
                level_parts.append(p)
            parts.append(level_parts)
            if self.keep[lvl]:
                h, z = h[:, : self.keep[lvl]], h[:, self.keep[lvl]:]
                lp = lp + self.priors[lvl].log_prob(z, h)
            else:
                lp = lp + self.priors[lvl].log_prob(h)
        return LeftPass(parts, lp)


class LeftGlowConditioner(Conditioner):
    """Encodes the label map with the left Glow; routes to right step ``k`` of level ``l`` the channel
    concatenation of left step ``(l, k)``'s activations named in ``parts`` (step 0 of a level is the
    squeeze, which reads nothing; priors read nothing)."""

    def __init__(self, left: LeftGlow, parts: tuple[str, ...]) -> None:
        super().__init__()
        self.left = left
        self.parts = parts

    def encode(self, cond: Tensor) -> LeftPass:
        return self.left.forward_parts(cond)

    def route(self, encoded: LeftPass, level: int, step: int | None, shape: Shape) -> Tensor | None:
        if step is None or step == 0:
            return None
        p = encoded.parts[level][step - 1]
        return torch.cat([p[k] for k in self.parts], dim=1)
