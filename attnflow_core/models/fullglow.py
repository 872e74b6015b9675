r"""Full-Glow (label → photo translation) and cAttnFlow: the ``fullglow`` model family.

Two Glows of the same shape: the **left** one models the label map :math:`x_a`, the **right** one the
photo :math:`x_b`; every right step's ActNorm, 1×1 conv and coupling read the matching left activation
(:mod:`attnflow_core.models.fullglow_parts` has the layout and the routing). With ``attention`` set to
``imap`` / ``itrans``, an iMap / iTrans layer is inserted into every right step at ``position`` and reads
the left activation at the same point (cAttnFlow, paper §5 "Image Translation").

Data conventions: model space is :math:`[-\tfrac12, \tfrac12]`. ``cond`` (the label map) is either an
8-bit integer tensor (uint8: colour labels 0..255, or one-hot labels stored as 0/255) or a float tensor
already in model space. 8-bit labels are dequantised like the photo: with noise in
:meth:`FullGlow.bits_per_dim` / :meth:`FullGlow.joint_bits_per_dim` (as the reference does for training
and validation), at bin centres in :meth:`FullGlow.log_prob`, ``encode``, ``decode`` and ``sample``.

**Conditional bits/dim** (Table 5). With :math:`\tilde x = (x + u)/256 - \tfrac12`, :math:`u \sim U(0,1)`
for both the photo and the label and :math:`D = 3HW` photo dimensions:

.. math:: \mathrm{bpd}(x_b \mid x_a) = -\frac{\log p(\tilde x_b \mid \tilde x_a) - D \ln 256}{D \ln 2},

where :math:`\log p(\tilde x_b \mid \tilde x_a)` is the right Glow's change of variables given the left
activations. The training loss is :math:`10^{-4}\,\mathrm{bpd}(x_a) + \mathrm{bpd}(x_b \mid x_a)`
(``left_weight``; :class:`~attnflow_core.training.objectives.JointBitsPerDim`). The reference
dequantises with :math:`k/255 + u/256`; we use :math:`(k + u)/256` so that the 256 bins tile the range.

**Against the reference** (``MoeinSorkhei/glow2``; its checkpoints load through
``load_reference(path, family="fullglow")``, which matches its log p, latents and inverses to 1e-13 on a fixture
it computed, and :func:`~attnflow_core.models.interop.fullglow.glow2_bits_per_dim` reproduces its printed
bits/dim). Kept differences: per-sample log-dets (glow2 gives its conditional ActNorm's batch mean to every
sample; at batch > 1 its conditional LU 1×1 convs fail in forward, its unconditional ones in reverse); data in
:math:`[-\tfrac12, \tfrac12]`, not :math:`[0, 1]` (a shift the loader folds into the first ActNorms); the
dequantisation above and :math:`D = CHW` (glow2 counts :math:`3HW` whatever the channel count); ActNorms start
from data only in training mode (glow2: on any first pass); levels must be at least 5×5 (at 4×4 glow2's conditioning
nets see no features, only their last bias); ActNorm scales are positive (:math:`e^{\ell}`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..core.checks import check_finite, check_model_space
from ..core.errors import FlowError
from .config import AttentionOptions
from .fullglow_parts import ATTENTION_PART, PARTS, GlowTower, LeftGlow, LeftGlowConditioner, LeftPass, tower_shapes
from .multiscale import max_squeezes
from .registry import register_family

_LABEL_HINT = "pass 8-bit label maps (uint8: colour labels 0..255 or one-hot 0/255) to have them dequantised"


@dataclass
class FullGlowConfig(AttentionOptions):
    """Configuration of Full-Glow / cAttnFlow (JSON-friendly). ``image_shape`` is the photo's,
    ``label_channels`` the label map's channel count (3 for colour labels, 34 for one-hot labelIds).
    ``left_weight`` is the weight of the left Glow's bits/dim in the training loss (the reference's
    ``--reg_factor``), not an architectural setting."""

    family: ClassVar[str] = "fullglow"

    image_shape: tuple[int, int, int] = (3, 256, 256)
    label_channels: int = 3
    levels: int = 4
    steps: int = 16
    hidden: int = 512
    cond_hidden: int = 128
    heads: int = 1  # the paper's Table 5 count (34.70 M) is iTrans with one head
    left_weight: float = 1e-4

    def validate(self) -> None:
        self._attention_ok()
        self._image_shape_ok()
        self._at_least_one("label_channels", "levels", "steps", "hidden", "cond_hidden")
        if not self.left_weight >= 0:
            raise FlowError(f"config.left_weight must be >= 0, got {self.left_weight}")
        _, h, w = self.image_shape
        if self.levels > max_squeezes(h, w):
            raise FlowError(f"an image of {h}×{w} cannot be squeezed {self.levels} times; use fewer levels")
        _, lh, lw = tower_shapes(self.image_shape, self.levels)[-1]
        if min(lh, lw) < 5:
            raise FlowError(f"level {self.levels} of a {h}×{w} image is {lh}×{lw}, but Full-Glow's conditioning "
                            f"nets need at least 5×5 (two valid 3×3 convs): use fewer levels or larger images")
        for c, lh, lw in tower_shapes(self.image_shape, self.levels):
            self.check_attention_fits(c, lh, lw)


class FullGlow(GlowTower):
    r"""Full-Glow: a left Glow over the label map and a right Glow over the photo whose every ActNorm,
    1×1 conv and coupling is conditioned on the matching left activation (the module docstring has the
    conventions and the conditional bits/dim). The model *is* the right Glow; the left Glow lives in its
    conditioner (``model.left``) and is trained jointly through :meth:`joint_bits_per_dim`.

    ``log_prob(photo, cond=label)`` is :math:`\log p(x_b \mid x_a)` per sample; ``sample(n, temperature, cond=label)``
    draws photos for a batch of label maps; ``encode`` / ``decode`` are exact inverses given the label.

    References: Sorkhei et al., "Full-Glow: Fully conditional Glow for more realistic image generation",
    GCPR 2021; Sukthanker et al., "Generative Flows with Invertible Attentions", CVPR 2022 (cAttnFlow).
    """

    def __init__(self, config: FullGlowConfig | Mapping[str, Any]) -> None:
        cfg = config if isinstance(config, FullGlowConfig) else FullGlowConfig.from_dict(config)
        cfg.validate()
        _, h, w = cfg.image_shape
        label_shape = (cfg.label_channels, h, w)
        left = LeftGlow(label_shape, cfg.levels, cfg.steps, cfg.hidden, cond_hidden=cfg.cond_hidden)
        attn: dict[str, Any] = {}
        parts = ("act", "w", "out")
        if cfg.attention != "none":
            attn = dict(attention=cfg.attention, position=cfg.position, **cfg.attention_options())
            parts = tuple(p for p in PARTS if p in set(parts) | {ATTENTION_PART[cfg.position]})
        super().__init__(cfg.image_shape, cfg.levels, cfg.steps, cfg.hidden,
                         cond_channels=[s[0] for s in tower_shapes(label_shape, cfg.levels)],
                         cond_hidden=cfg.cond_hidden, model_cond_channels=cfg.label_channels,
                         conditioner=LeftGlowConditioner(left, parts), **attn)
        self.config = cfg
        self.label_shape = label_shape

    @property
    def left(self) -> LeftGlow:
        return self.conditioner.left

    @property
    def label_dims(self) -> int:
        return int(math.prod(self.label_shape))

    # -- the label map -----------------------------------------------------------------------------
    def _check_label(self, cond: Any) -> None:
        if cond is None:
            raise FlowError("Full-Glow is conditional: pass the label map as cond")
        if not isinstance(cond, Tensor) or cond.dim() != 4:
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise FlowError(f"the label map must be a (B, C, H, W) tensor, got {got}")
        if cond.shape[1] != self.label_shape[0]:
            raise FlowError(f"the label map has {cond.shape[1]} channels, but this model was built for "
                            f"label_channels={self.label_shape[0]} (3 for colour labels, 34 for one-hot labelIds)")
        if tuple(cond.shape[2:]) != tuple(self.label_shape[1:]):
            raise FlowError(f"label map and photo have different sizes: the label map is "
                            f"{cond.shape[2]}×{cond.shape[3]}, the model's photos are "
                            f"{self.image_shape[1]}×{self.image_shape[2]}; resize both to the same size")

    def label_to_model(self, cond: Tensor, noise: bool = False) -> Tensor:
        """An 8-bit (integer) label map → model space, dequantised (with noise or at bin centres);
        a float label map is taken to be in model space already."""
        self._check_label(cond)
        if torch.is_floating_point(cond):
            check_model_space(cond, "float label map", _LABEL_HINT)
            return cond
        if cond.dtype != torch.uint8:  # e.g. int64 label IDs or 0/1 one-hots: not 8-bit values, never read as such
            raise FlowError(f"the label map has dtype {cond.dtype}; {_LABEL_HINT} (label IDs → "
                            f"attnflow_core.data.cityscapes.onehot)")
        return self.dequantize(cond, noise).to(next(self.parameters()).dtype)

    def _encode_cond(self, cond: Any) -> LeftPass:
        return self.conditioner.encode(self.label_to_model(cond))

    def _check_input(self, x: Tensor, cond: Any) -> None:
        self._check_label(cond)
        super()._check_input(x, cond)

    # -- densities -----------------------------------------------------------------------------------
    def joint_log_prob(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """``(log p(x_a), log p(x_b | x_a))`` per sample: the left Glow's density of the label map and the
        right Glow's conditional density of the photo (both continuous, in model space)."""
        self._check_input(x, cond)
        return self._joint(x, self._encode_cond(cond))

    def _joint(self, x: Tensor, enc: LeftPass) -> tuple[Tensor, Tensor]:
        """:meth:`joint_log_prob` with the label already encoded (the right Glow's density is the engine's)."""
        return enc.log_prob, self._log_prob(x, enc)

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """:math:`\\log p(x_b \\mid x_a)` per sample (photo ``x`` in model space)."""
        return self.joint_log_prob(x, cond)[1]

    def joint_bits_per_dim(self, x: Tensor, cond: Tensor, noise: bool = True,
                           bits: int | None = None) -> tuple[Tensor, Tensor]:
        """Per-sample ``(bpd(x_a), bpd(x_b | x_a))`` of 8-bit photos ``x`` (``bits``-bit if declared) and
        8-bit label maps ``cond``, both dequantised with uniform noise (``noise=False``: at bin centres)."""
        self._check_label(cond)
        dtype = next(self.parameters()).dtype
        xm = self.dequantize(x, noise, bits).to(dtype)
        cm = self.label_to_model(cond, noise).to(dtype)
        lp_a, lp_b = self.joint_log_prob(xm, cm)
        return (self.bits_from_log_prob(lp_a, self.label_dims),
                self.bits_from_log_prob(lp_b, self.dims, 8 if bits is None else bits))

    def bits_per_dim(self, x: Tensor, cond: Any = None, noise: bool = True, bits: int | None = None) -> Tensor:
        """Conditional bits/dim :math:`\\mathrm{bpd}(x_b \\mid x_a)` per sample (module docstring)."""
        return self.joint_bits_per_dim(x, cond, noise, bits)[1]

    # -- sampling ------------------------------------------------------------------------------------
    def _check_sample_cond(self, cond: Any, n: int) -> None:
        r"""``sample(n, τ, cond=label)`` (or, deprecated, ``sample(label, τ)``): photos for label maps, latents
        :math:`z = \mu + \tau\sigma\varepsilon` from every prior, coarse to fine (the engine's
        :meth:`sample` checks n, τ and the batch)."""
        self._check_label(cond)
        check_finite(cond, "label map")


register_family("fullglow", FullGlowConfig, FullGlow)
