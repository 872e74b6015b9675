"""Contractive flows: Residual Flows and i-ResNet backbones, with ACF's or Zha et al.'s attention.

Layout (``arch="resflow"``, Chen et al. 2019, as in their code with ``--actnorm True --factor-out False``):
logit transform → ActNorm → scale 1: ``n₁`` × [residual block, ActNorm] → squeeze → scale 2 … → last scale:
``n_L`` × [block, ActNorm] then ``fc_blocks`` × [FC block, per-element ActNorm]; no factoring out, prior
``N(0, I)``. Blocks are ``[LipSwish] → SNConv3×3(C→512) → LipSwish → SNConv1×1 → LipSwish → SNConv3×3(512→C)``,
``c = 0.98``, the pre-activation left out in the very first block; log-det by the Russian roulette.

``arch="iresnet"`` (Behrmann et al. 2019, as used by Zha et al.): data in ``[-1/2, 1/2]`` (no logit), a
squeeze first, then per scale ``n`` × [ActNorm, block] with ELU and ``c = 0.9``, half the channels factored
out after every scale but the last, a learned diagonal Gaussian over all latents; log-det by the biased
5-term series (as published).

``attention``: ``"acf_l2"`` / ``"acf_dot"`` put ACF's attention into every conv block's branch (not the FC
blocks, as in ACF's code), over all positions of the map (ACF's code; ``attention_window=None``, the default)
or, with ``attention_window = w``, within non-overlapping ``w×w`` windows (``min(w, side)`` per axis; the
window must tile the map of every scale: at 28×28, ``w = 7`` gives 7×7 windows at 28×28 and 14×14 and
global attention at 7×7). Windows keep the certificate (the bound uses the ``N_w = w²`` tokens of a
window, :mod:`~attnflow_core.nn.lipschitz_attention`) and cut the ``N×N`` attention to ``N×N_w``;
``"idp"`` / ``"icon"`` add one Zha attention block at the end of scale 1, before
its split (Zha's gen repo), ``attention_variant`` ``"published"`` or ``"corrected"``. The kinds and their options
come from :data:`~attnflow_core.nn.contractive_attention.CONTRACTIVE_ATTENTIONS` (``heads``: ACF L2's heads, as
in the other families; ``zha_normalise``: the published Zha form's ``"global"`` (default) or ``"column"``); a
field set for a kind that does not take it is refused, not ignored.

Parameter counts of the reference configurations (:func:`reference_config`) against the counts measured
from the public code (rtqichen/residual-flows; Zha's i-ResNet code; also in ``docs/fidelity.md``): Residual Flow CIFAR-10 25,174,129 vs
25,174,233 and MNIST 16,608,589 vs 16,608,693 (both −104: the public blocks also hold ``geom_p`` and
``lamb`` as never-trained ``nn.Parameter`` s, 2 per block × 52 blocks); i-ResNet (Zha) 25,028,544
equal, + 390 (iDP) / + 397 (iCon).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..core.errors import FlowError
from ..core.layer import FlowLayer, FlowSequence
from ..flows.elementwise import FlooredActNorm, LogitTransform
from ..flows.glow import Squeeze
from ..flows.logdet import LogDetConfig
from ..flows.residual import ResidualBlock
from ..flows.residual_attention import AttentiveResidualBlock, ZhaAttentionBlock
from ..nn.contractive_attention import CONTRACTIVE_ATTENTIONS, AttentionKind
from ..nn.lipschitz import SpectralRefresh
from ..nn.lipschitz_attention import resolve_window
from ..nn.lipschitz_nets import LipschitzConvNet, LipschitzFCNet
from ..priors import DiagonalGaussianPrior, StandardNormal
from .base import Level, MultiScaleFlow
from .config import ModelConfig
from .registry import register_family

ARCHS = ("resflow", "iresnet")
# config field -> the option of CONTRACTIVE_ATTENTIONS it sets, and its default (a non-default value is
# refused for a kind that does not take the option: it would be silently ignored)
_OPTION_FIELDS = {"heads": ("heads", 1), "attention_window": ("window", None),
                  "attention_variant": ("variant", "corrected"), "zha_normalise": ("normalise", None)}


@dataclass
class ResFlowConfig(ModelConfig):
    """Configuration of a contractive flow (module docstring); JSON-friendly."""

    family: ClassVar[str] = "resflow"

    arch: str = "resflow"
    image_shape: tuple[int, int, int] = (3, 32, 32)
    scales: tuple[int, ...] = (16, 16, 16)
    hidden: int = 512
    kernels: str = "3-1-3"
    coeff: float = 0.98
    activation: str = "lipswish"
    logit_alpha: float | None = 0.05
    fc_blocks: int = 4
    fc_hidden: int = 128
    attention: str = "none"
    attention_variant: str = "corrected"
    heads: int = 1
    attention_window: int | None = None
    zha_normalise: str | None = None
    logdet: dict[str, Any] = field(default_factory=dict)
    inverse_max_iter: int = 1000

    def logdet_config(self) -> LogDetConfig:
        base = {"method": "series", "n_terms": 5, "neumann_grad": False} if self.arch == "iresnet" else {}
        return LogDetConfig.from_dict({**base, **self.logdet})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ResFlowConfig":
        if "attention_heads" in d:
            raise FlowError("resflow config key 'attention_heads' is now 'heads' (the name every family uses)")
        return super().from_dict(d)

    def attention_kind(self) -> AttentionKind | None:
        """The :data:`~attnflow_core.nn.contractive_attention.CONTRACTIVE_ATTENTIONS` entry (``None``: none)."""
        return None if self.attention == "none" else CONTRACTIVE_ATTENTIONS[self.attention]

    def attention_options(self) -> dict[str, Any]:
        """The options of the attention kind, from this config's fields (only those the kind takes)."""
        kind = self.attention_kind()
        values = {opt: getattr(self, f) for f, (opt, _) in _OPTION_FIELDS.items()}
        return {} if kind is None else kind.select({**values, "coeff": self.coeff})

    def validate(self) -> None:
        kinds = ("none",) + CONTRACTIVE_ATTENTIONS.names()
        if self.arch not in ARCHS or self.attention not in kinds:
            raise FlowError(f"config.arch must be one of {ARCHS} and config.attention one of {kinds}; "
                            f"got {self.arch!r}, {self.attention!r}")
        kind = self.attention_kind()
        if kind is not None and kind.placement == "block" and self.arch != "iresnet":
            raise FlowError("Zha's iDP/iCon blocks are placed in the i-ResNet (arch='iresnet'), as in their code")
        for f, (opt, default) in _OPTION_FIELDS.items():
            if getattr(self, f) != default and (kind is None or opt not in kind.options):
                takes = [n for n, k in CONTRACTIVE_ATTENTIONS.items() if opt in k.options]
                raise FlowError(f"config.{f}={getattr(self, f)!r} applies to attention in {takes}, not to "
                                f"attention={self.attention!r}")
        if self.attention_variant == "corrected" and self.zha_normalise is not None:
            raise FlowError(f"config.zha_normalise={self.zha_normalise!r} applies to Zha's published form only; the "
                            f"corrected form always normalises per output (leave it unset or use "
                            f"attention_variant='published')")
        if not 0 < self.coeff < 1:
            raise FlowError(f"config.coeff (the spectral-norm target of every layer of a residual branch) must be "
                            f"in (0, 1) for the branch to be contractive, got {self.coeff}")
        if len(self.image_shape) != 3 or not self.scales or min(self.scales) < 0 or self.hidden < 1:
            raise FlowError(f"bad image_shape {self.image_shape}, scales {self.scales} or hidden {self.hidden}")
        squeezes = len(self.scales) - 1 + (self.arch == "iresnet")
        _, h, w = self.image_shape
        if h % 2 ** squeezes or w % 2 ** squeezes:
            raise FlowError(f"a {h}×{w} image cannot be squeezed {squeezes} times ({len(self.scales)} scales"
                            f"{', squeeze first' if self.arch == 'iresnet' else ''}); use fewer scales")
        if self.attention_window is not None:
            first = int(self.arch == "iresnet")  # the i-ResNet squeezes before its first scale
            for s in range(len(self.scales)):  # the map of every scale must be tiled by the window
                resolve_window(self.attention_window, (h >> (s + first), w >> (s + first)),
                               f"config.attention_window at scale {s + 1}")
        self.logdet_config()


class ResFlowModel(MultiScaleFlow):
    """Residual Flow / i-ResNet density model, optionally with ACF or Zha attention (module docstring).

    References: Behrmann et al., "Invertible Residual Networks", ICML 2019; Chen et al., "Residual Flows for
    Invertible Generative Modeling", NeurIPS 2019; Mukherjee et al., "Attentive Contractive Flow with Lipschitz
    Constrained Self-Attention", BMVC 2023; Zha et al., "Invertible Attention", arXiv 2106.09003 (2021).
    """

    def __init__(self, config: ResFlowConfig | Mapping[str, Any]) -> None:
        cfg = config if isinstance(config, ResFlowConfig) else ResFlowConfig.from_dict(config)
        cfg.validate()
        resflow, ld, kind = cfg.arch == "resflow", cfg.logdet_config().to_dict(), cfg.attention_kind()
        levels, (c, h, w) = [], cfg.image_shape
        for s, n_blocks in enumerate(cfg.scales):
            last = s == len(cfg.scales) - 1
            layers: list[FlowLayer] = [LogitTransform(cfg.logit_alpha)] if s == 0 and cfg.logit_alpha is not None else []
            if s > 0 or not resflow:  # the i-ResNet squeezes first, the Residual Flow between scales
                layers.append(Squeeze())
                c, h, w = 4 * c, h // 2, w // 2
            if s == 0 and resflow:
                layers.append(FlooredActNorm(c))
            for b in range(n_blocks):  # i-ResNet: [ActNorm, block]; Residual Flow: [block, ActNorm] (built in order)
                layers += [] if resflow else [FlooredActNorm(c)]
                layers.append(self._conv_block(cfg, c, (h, w), s == 0 and b == 0, ld, f"scale {s + 1} block {b + 1}"))
                layers += [FlooredActNorm(c)] if resflow else []
            if s == 0 and kind is not None and kind.placement == "block":
                layers.append(ZhaAttentionBlock(c, cfg.attention, cfg.attention_variant, cfg.zha_normalise,
                                                cfg.coeff, ld, cfg.inverse_max_iter, name="scale 1 attention"))
            for b in range(cfg.fc_blocks if last else 0):
                fc = LipschitzFCNet((c, h, w), cfg.fc_hidden, 3, cfg.coeff, cfg.activation)
                layers += [ResidualBlock(fc, c, ld, cfg.inverse_max_iter, name=f"FC block {b + 1}"),
                           FlooredActNorm(c, (h, w))]
            if last:  # all latent: N(0, I) (Residual Flow) or a learned diagonal Gaussian (i-ResNet)
                levels.append(Level(FlowSequence(layers), 0, StandardNormal() if resflow else DiagonalGaussianPrior((c, h, w))))
            elif resflow:  # no factoring out
                levels.append(Level(FlowSequence(layers), None))
            else:  # i-ResNet: half the channels factored out
                levels.append(Level(FlowSequence(layers), c // 2, DiagonalGaussianPrior((c - c // 2, h, w))))
                c = c // 2
        super().__init__(cfg.image_shape, levels)
        self.config = cfg

    @staticmethod
    def _conv_block(cfg: ResFlowConfig, c: int, size: tuple[int, int], first: bool, logdet: dict[str, Any],
                    name: str) -> ResidualBlock:
        """A conv residual block (with ACF's attention in its branch if configured); the very first block
        of the model has no pre-activation."""
        net = dict(kernels=cfg.kernels, coeff=cfg.coeff, activation=cfg.activation, preact=not first)
        kind = cfg.attention_kind()
        if kind is not None and kind.placement == "branch":
            return AttentiveResidualBlock(c, cfg.hidden, size, attention=cfg.attention, logdet=logdet,
                                          max_iter=cfg.inverse_max_iter, name=name, **net, **cfg.attention_options())
        return ResidualBlock(LipschitzConvNet(c, cfg.hidden, size, **net), c, logdet, cfg.inverse_max_iter, name=name)

    def training_hooks(self, total_steps: int) -> list:
        """Refresh every spectral norm after each optimiser step (Residual Flows' training loop; the
        forward pass would also renormalise stale weights, so the certificate holds either way)."""
        return [SpectralRefresh()]

    def residual_blocks(self) -> list[ResidualBlock]:
        return [m for m in self.modules() if isinstance(m, ResidualBlock)]

    def lipschitz_certificates(self) -> dict[str, float]:
        """Certified ``Lip(g)`` of every residual block (``inf`` where none holds, e.g. Zha's published form)."""
        return {blk.name: blk.lipschitz_bound() for blk in self.residual_blocks()}


def reference_config(name: str, **overrides: Any) -> ResFlowConfig:
    """The published configurations: ``"resflow_cifar10"``, ``"resflow_mnist"``, ``"iresnet_cifar10"``
    (Zha's; ``attention="idp"``/``"icon"`` adds their block)."""
    presets: dict[str, dict[str, Any]] = {
        "resflow_cifar10": dict(arch="resflow", image_shape=(3, 32, 32), logit_alpha=0.05),
        "resflow_mnist": dict(arch="resflow", image_shape=(1, 28, 28), logit_alpha=1e-6),
        "iresnet_cifar10": dict(arch="iresnet", image_shape=(3, 32, 32), logit_alpha=None, coeff=0.9,
                                activation="elu", fc_blocks=0),
    }
    if name not in presets:
        raise FlowError(f"unknown reference configuration {name!r}; choose one of {sorted(presets)}")
    return ResFlowConfig.from_dict({**presets[name], **overrides})


register_family("resflow", ResFlowConfig, ResFlowModel)
