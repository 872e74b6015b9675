r"""SRFlow and cAttnFlow: conditional flows for 8× (or 4×) super-resolution (the ``srflow`` model family).

The flow models a high-resolution image ``x`` (HR, ``C×H×W``) given its low-resolution version
``lr`` (``C×H/s×W/s``, ``s = config.scale``): :math:`\log p(x \mid lr) = \log p_Z(f(x; u(lr))) + \log|\det \partial f/\partial x|`
with ``u`` the features of a jointly trained RRDB encoder (:mod:`attnflow_core.nn.rrdb`).

Layout (SRFlow's ``FlowUpsamplerNet``): per level ``l = 1..L`` (``H/2^l × W/2^l``)

* squeeze ×2 (channel order ``4c + 2·dy + dx``);
* ``extra_steps`` (2) unconditional steps: ActNorm → unfactored 1×1 conv;
* ``K`` conditional steps: ActNorm → 1×1 conv → affine injector (from ``u`` alone) → conditional affine
  coupling on ``[z1, u]``; cAttnFlow adds iMap or iTrans at ``position`` (4 = after the coupling, the
  paper's placement; 1 = before ActNorm, 2 = after ActNorm, 3 = after the 1×1 conv), its attention
  weights seeing ``u`` unless ``attention_cond=False``;
* split: the first ``C − round(C/2)`` channels go on, the rest is factored out with a learned Gaussian
  conditioned on the kept half (not on ``u``). **The reference's rule splits only levels ``l < L − 1``**
  (an off-by-one; so L=1 and L=2 never split and L=4 splits twice); ``correct_splits=True`` splits every
  level but the last. The top latent has the fixed prior N(0, I).

Conditioning features of level ``l``: the encoder map of that scale (at 8×: ``fea_up4``, ``fea_up2``,
``fea_up1``, ``fea_up0`` for ``l = 1..4``; at 4×: ``fea_up2``, ``fea_up1``, ``fea_up0``, ``fea_up-1``;
64 channels, post-activation as in the reference) followed by the outputs of RRDB blocks 1, 3, 5, 7
(0-based; every other block ending with the last for other depths; DF2K 4×: 1, 8, 15, 22) resized to the level by nearest
interpolation: ``64·5 = 320`` channels, the same tensor for every step of the level.

Data conventions. ``x`` is in model space ``[-1/2, 1/2]``; :meth:`bits_per_dim` takes uint8 HR images
and dequantises them uniformly: :math:`\tilde x = (x + v)/256 - 1/2`, :math:`v \sim U(0,1)^D`,
:math:`\mathrm{bpd} = -(\log p(\tilde x \mid lr) - D\log 256)/(D \ln 2)`, ``D = C·H·W``. (SRFlow's released
training uses ``x/255`` with no noise, a continuous density; its paper describes noise.) ``lr`` is
uint8 (divided by 255) or float in ``[0, 1]``, as in SRFlow. :meth:`super_resolve` returns uint8 images:
``floor((x + 1/2)·256)`` clamped to 0..255 (SRFlow: clamp to [0, 1], ×255, truncate).
The authors' checkpoints load with ``load_reference(path, family="srflow")``, and
:mod:`attnflow_core.models.interop.srflow` scores in their conventions (HR in [0, 1], "nll" per pixel).

Parameter counts (tested): SRFlow L1 K1 = 6,345,667 and L2 K8 = 12,977,299 (and L4 K16 = 39,753,955):
the reference's 6,622,243 / 13,253,875 / 40,030,531 minus exactly the 276,576 parameters of an unused
3×3 conv (320→96) that the reference builds in ``FlowUpsamplerNet`` and never calls.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import place_attention
from ..core.checks import check_finite, check_image
from ..core.errors import FlowError
from ..core.layer import FlowLayer, FlowSequence, LayerExample
from ..flows.glow import ActNorm, Squeeze
from ..flows.srflow import AffineInjector, CondAffineCoupling, InvConv1x1Full
from ..nn.rrdb import RRDBNet
from ..priors import SplitGaussianPrior, StandardNormal
from .base import Level, MultiScaleFlow
from .conditioning import EncoderConditioner
from .registry import register_family
from .srflow_config import SRFlowConfig


class SRFlowStep(FlowSequence):
    """A conditional step: ActNorm → 1×1 conv → affine injector → conditional coupling, with an optional
    iMap/iTrans at ``position`` (cAttnFlow). Every layer gets the level's features as ``cond``.

    References: Lugmayr et al., "SRFlow", ECCV 2020 (the step); Sukthanker et al., "Generative Flows with
    Invertible Attentions", CVPR 2022 (§5: attentions inserted after the existing layers, cAttnFlow).
    """

    contract_exempt = ""  # a concrete step: it carries its own examples

    def __init__(self, channels: int, cfg: SRFlowConfig, size: tuple[int, int] | None = None) -> None:
        fc = cfg.feature_channels
        layers: list[FlowLayer] = [ActNorm(channels), InvConv1x1Full(channels),
                                   AffineInjector(channels, fc, cfg.hidden, cfg.eps),
                                   CondAffineCoupling(channels, fc, cfg.hidden, cfg.eps)]
        if cfg.attention != "none":
            place_attention(layers, cfg.attention_layer(channels, fc if cfg.attention_cond else 0, size=size),
                            cfg.position)
        super().__init__(layers)
        self.cond_channels = fc

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        def step(**kw: Any) -> "SRFlowStep":
            return cls(4, SRFlowConfig(image_shape=(3, 16, 16), levels=1, hidden=8, nf=2, nb=1, heads=2, **kw))

        return {"srflow_step": LayerExample(step, (2, 4, 4, 4), (2, 4, 4, 4)),
                "cattnflow_imap": LayerExample(lambda: step(attention="imap"), (2, 4, 4, 4), (2, 4, 4, 4)),
                "cattnflow_itrans_pos3": LayerExample(lambda: step(attention="itrans", position=3), (2, 4, 4, 4),
                                                      (2, 4, 4, 4))}


class SRFlowFeatures(nn.Module):
    """The RRDB and SRFlow's feature assembly: ``lr`` in [0, 1] → one ``(B, nf·(1+|blocks|), ·, ·)``
    tensor per level (the level's own map, then the chosen block outputs resized by nearest)."""

    def __init__(self, rrdb: RRDBNet, level_maps: Sequence[str], blocks: tuple[int, ...]) -> None:
        super().__init__()
        self.rrdb, self.level_maps, self.blocks = rrdb, tuple(level_maps), tuple(blocks)

    def forward(self, lr: Tensor) -> list[Tensor]:
        f = self.rrdb.features(lr, self.blocks, half="fea_up0" in self.level_maps,
                               quarter="fea_up-1" in self.level_maps)
        stacked = torch.cat([f[f"block_{b}"] for b in self.blocks], dim=1)
        out = []
        for name in self.level_maps:
            own = f[name]
            out.append(torch.cat([own, F.interpolate(stacked, size=own.shape[-2:], mode="nearest")], dim=1))
        return out


class SRFlowModel(MultiScaleFlow):
    """SRFlow (``attention="none"``) or cAttnFlow-iMap / -iTrans for 8× or 4× SR (layout: the module docstring).

    ``log_prob(x, cond=lr)``, ``bits_per_dim(hr_uint8, cond=lr)``, ``sample(n, temperature, cond=lr)`` (model
    space; latents drawn from N(0, τ²)), ``super_resolve(lr, temperature)`` (uint8), and the exact
    bijection ``encode(x, lr)`` / ``decode(zs, lr)``. The RRDB is part of the model and trains jointly;
    with ``freeze_encoder_fraction > 0`` it starts frozen and :meth:`training_hooks` unfreezes it.

    References: Lugmayr et al., "SRFlow: Learning the Super-Resolution Space with Normalizing Flow", ECCV
    2020; Sukthanker et al., "Generative Flows with Invertible Attentions", CVPR 2022 (cAttnFlow, Table 4).
    """

    def __init__(self, config: SRFlowConfig | Mapping[str, Any]) -> None:
        cfg = config if isinstance(config, SRFlowConfig) else SRFlowConfig.from_dict(config)
        cfg.validate()
        levels, (c, h, w) = [], cfg.image_shape
        for level in range(1, cfg.levels + 1):
            c, h, w = 4 * c, h // 2, w // 2
            cfg.check_attention_fits(c, h, w)
            layers: list[FlowLayer] = [Squeeze()]
            for _ in range(cfg.extra_steps):
                layers += [ActNorm(c), InvConv1x1Full(c)]
            layers += [SRFlowStep(c, cfg, size=(h, w)) for _ in range(cfg.steps)]
            if level == cfg.levels:  # the top latent: N(0, I)
                levels.append(Level(FlowSequence(layers), 0, StandardNormal()))
            elif cfg.splits(level):
                keep = c - round(c / 2)
                levels.append(Level(FlowSequence(layers), keep, SplitGaussianPrior(keep, c - keep)))
                c = keep
            else:
                levels.append(Level(FlowSequence(layers), None))
        encoder = SRFlowFeatures(RRDBNet(cfg.nf, cfg.nb, cfg.gc, cfg.image_shape[0], cfg.image_shape[0], cfg.scale),
                                 [cfg.level_maps[lvl] for lvl in range(1, cfg.levels + 1)], cfg.blocks)
        super().__init__(cfg.image_shape, levels, cfg.feature_channels, EncoderConditioner(encoder))
        self.config = cfg
        self.register_buffer("encoder_frozen", torch.tensor(cfg.freeze_encoder_fraction > 0))
        self._frozen_cache: bool | None = None

    # -- the encoder ---------------------------------------------------------------------------------
    @property
    def rrdb(self) -> RRDBNet:
        return self.conditioner.encoder.rrdb

    def is_encoder_frozen(self) -> bool:
        if self._frozen_cache is None:  # one host read, then cached (reset when a state dict is loaded)
            self._frozen_cache = bool(self.encoder_frozen)
        return self._frozen_cache

    def set_encoder_frozen(self, frozen: bool) -> None:
        self.encoder_frozen.fill_(bool(frozen))
        self._frozen_cache = bool(frozen)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._frozen_cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def training_hooks(self, total_steps: int) -> list[Callable[[int, nn.Module, Any], None]]:
        """Trainer hooks: unfreeze the RRDB after ``freeze_encoder_fraction · total_steps`` steps (the
        SRFlow paper's schedule; its released code never freezes). The flag is a buffer, so a resumed run
        continues in the right phase."""
        if self.config.freeze_encoder_fraction <= 0:
            return []
        at = max(1, round(self.config.freeze_encoder_fraction * total_steps))

        def unfreeze(step: int, model: nn.Module, optimizer: Any) -> None:
            if step >= at and model.is_encoder_frozen():
                model.set_encoder_frozen(False)

        return [unfreeze]

    # -- inputs ----------------------------------------------------------------------------------------
    def _lr01(self, lr: Tensor) -> Tensor:
        dtype = next(self.parameters()).dtype
        return lr.to(dtype) / 255.0 if lr.dtype == torch.uint8 else lr.to(dtype)

    def check_lr(self, lr: Any, n: int | None = None) -> None:
        """The LR condition: a ``(B, C, H/s, W/s)`` tensor (``s = config.scale``), uint8 or float in [0, 1], finite."""
        if not isinstance(lr, Tensor):
            raise FlowError(f"SRFlow is conditioned on the LR image: pass cond as a tensor, got {type(lr).__name__}")
        c, h, w = self.config.lr_shape
        check_image(lr, c, "LR image (cond)")
        if tuple(lr.shape[2:]) != (h, w):
            s = self.config.scale
            raise FlowError(f"LR image is {lr.shape[2]}×{lr.shape[3]} but the model is built for HR "
                            f"{h * s}×{w * s}, whose {s}× LR is {h}×{w}: LR and HR must be an exact ×{s} pair")
        if n is not None and lr.shape[0] != n:
            raise FlowError(f"cond has batch size {lr.shape[0]} but the input has {n}")
        if not torch.is_floating_point(lr) and lr.dtype != torch.uint8:
            raise FlowError(f"the LR image (cond) has dtype {lr.dtype}: pass uint8 (0..255) or float in [0, 1]; "
                            f"other integer dtypes are not read as 8-bit images")
        if lr.dtype != torch.uint8:
            check_finite(lr, "LR image (cond)")
            if bool((lr < 0).any() or (lr > 1).any()):
                raise FlowError(f"a float LR image must lie in [0, 1] (SRFlow's convention), got range "
                                f"[{float(lr.min()):.3g}, {float(lr.max()):.3g}]; pass uint8 or divide by 255")

    def _check_input(self, x: Tensor, cond: Any) -> None:
        if cond is None:
            raise FlowError("SRFlow is conditional: pass the LR image as cond (log_prob(hr, cond=lr))")
        super()._check_input(x, cond)
        self.check_lr(cond, x.shape[0])

    def _encode_cond(self, cond: Any) -> Any:
        if cond is None:
            raise FlowError("SRFlow is conditional: pass the LR image as cond")
        lr = self._lr01(cond)
        if self.is_encoder_frozen():
            with torch.no_grad():
                return self.conditioner.encode(lr)
        return self.conditioner.encode(lr)

    # -- sampling --------------------------------------------------------------------------------------
    def _check_sample_cond(self, cond: Any, n: int) -> None:
        """``sample(n, τ, cond=lr)`` (or, deprecated, ``sample(lr, τ)``): the engine's :meth:`sample` checks
        n and τ, this the LR image."""
        if cond is None:
            raise FlowError("SRFlow samples are conditioned on an LR image: call sample(n, temperature, cond=lr)")
        self.check_lr(cond, n)

    @torch.no_grad()
    def super_resolve(self, lr: Tensor, temperature: float | Sequence[float] = 0.8) -> Tensor | list[Tensor]:
        """uint8 SR images of ``lr`` at one temperature, or a list over several (the encoder runs once)."""
        temps = [temperature] if isinstance(temperature, (int, float)) else list(temperature)
        if not temps:
            raise FlowError("super_resolve needs at least one temperature")
        if not isinstance(lr, Tensor):
            raise FlowError(f"super_resolve takes the LR image batch as a tensor, got {type(lr).__name__}")
        self._sample_args(lr.shape[0] if lr.dim() else None, temps[0], lr)  # the engine's entry checks
        temps = [self._check_temperature(t) for t in temps]
        enc = self._encode_cond(lr)
        out = [self.to_uint8(self._sample_encoded(enc, lr.shape[0], t)[1]) for t in temps]
        return out[0] if isinstance(temperature, (int, float)) else out


register_family("srflow", SRFlowConfig, SRFlowModel)
