r"""SRFlow's state dicts (andreas128/SRFlow) on our :class:`~attnflow_core.models.srflow.SRFlowModel`, and
scoring in SRFlow's conventions.

Layouts read: a whole ``SRFlowNet`` (the released ``SRFlow_CelebA_8X.pth``, ``SRFlow_DF2K_4X.pth``,
``SRFlow_DF2K_8X.pth``: keys ``RRDB.*`` and ``flowUpsamplerNet.layers.<i>.*``) and an RRDB-only checkpoint
(``RRDB_*.pth``: the encoder's keys without the ``RRDB.`` prefix, which SRFlow loads into its encoder before
training the flow). A ``module.`` prefix (DataParallel) is dropped, as the reference's loader does.

The reference's layer list is, per level: a squeeze (no parameters), ``additionalFlowNoAffine`` steps
(``actnorm``, ``invconv``), ``K`` conditional steps (``actnorm``, ``invconv``, ``affine.fFeatures`` = our
injector's net, ``affine.fAffine`` = our coupling's net) and, where it splits, ``Split2d`` (``conv``) = our
split prior. Reparameterisations (everything else is copied as is):

* ActNorm: the reference computes :math:`(x + b)\,e^{\ell}`, ours :math:`x\,e^{\ell} + b'`, so
  :math:`b' = b\,e^{\ell}`; the same for the ActNorm after each conv of the coupling networks.
* Data space: the reference's HR image is in :math:`[0, 1]`, ours in :math:`[-\tfrac12, \tfrac12]`; the shift is
  folded into the first ActNorm of level 1 (after the squeeze, a shift stays a constant shift):
  :math:`b' = (b + \tfrac12)\,e^{\ell}`. Densities are unchanged (a translation has unit Jacobian).
* Zero convs: ``logs`` of shape ``(C, 1, 1)`` becomes ``(1, C, 1, 1)``.

Deliberately unused: ``flowUpsamplerNet.f.*`` (a 3×3 conv the reference builds and never calls). Our
``initialized`` flags are set (the reference treats a loaded ActNorm as initialised) and ``encoder_frozen``
is cleared (the released code never freezes the RRDB). Any other key raises :class:`~attnflow_core.core.errors.CheckpointError` naming it.

The architecture is read from the state dict (``nf``, ``gc``, ``nb``, scale from ``upconv3``, ``L``, ``K``,
extra steps, the split rule, ``hidden``); two things are not in it: the HR size (default 160×160, the
released training size) and which RRDB blocks feed the flow (known for the released layouts: nb 8 →
1, 3, 5, 7; nb 23 at 8× → 1, 3, 5, 7; nb 23 at 4× → 1, 8, 15, 22). ``config`` (a dict) overrides any field.
For an RRDB-only checkpoint the flow fields come from ``config`` (default: the released L, K for that
scale) and the flow keeps its fresh initialisation.

SRFlow's conventions: :func:`reference_nll` (its printed "nll": per *pixel*, not per dimension, with an
optional ``quant`` noise and :math:`-HW\ln(\text{quant})` term exactly as ``SRFlowNet.normal_flow`` adds
it), :func:`reference_encode` (its ``epses``: standardised split latents finest first, then the top
latent) and :func:`reference_decode` (its reverse pass from ``epses``, HR in [0, 1]).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.errors import CheckpointError
from ..srflow import SRFlowModel
from ..srflow_config import SRFlowConfig
from . import assign, check_all_used, register_reference

CODE = "SRFlow"
IGNORED = ("flowUpsamplerNet.f.0.weight", "flowUpsamplerNet.f.0.bias")
KNOWN_BLOCKS = {(8, 8): (1, 3, 5, 7), (23, 8): (1, 3, 5, 7), (23, 4): (1, 8, 15, 22)}  # (nb, scale)
RELEASED_FLOW = {8: {"levels": 4, "steps": 16}, 4: {"levels": 3, "steps": 16}}
ENC = "conditioner.encoder.rrdb."
_LAYER = re.compile(r"flowUpsamplerNet\.layers\.(\d+)\.(.+)")


class _Reader(dict):
    """The checkpoint with ``module.`` dropped; remembers which keys the mapping read."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or not state:
            raise CheckpointError(f"an SRFlow checkpoint is a non-empty state dict, got {type(state).__name__}")
        super().__init__({(k[7:] if k.startswith("module.") else k): v for k, v in state.items()})
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> Tensor:
        if key not in self:
            raise CheckpointError(f"{CODE} checkpoint lacks {key}, which this layout needs")
        self.used.add(key)
        return super().__getitem__(key)


def _rrdb_arch(state: Mapping[str, Tensor], prefix: str) -> dict[str, Any]:
    for k in ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight"):
        if prefix + k not in state:
            raise CheckpointError(f"{CODE} checkpoint has no {prefix + k}: not an SRFlow/RRDB state dict")
    first, conv1 = state.get(prefix + "conv_first.weight"), state.get(prefix + "RRDB_trunk.0.RDB1.conv1.weight")
    trunk = {int(k[len(prefix) + 11:].split(".")[0]) for k in state if k.startswith(prefix + "RRDB_trunk.")}
    if prefix + "upconv4.weight" in state:
        raise CheckpointError(f"{CODE} checkpoint is a 16× RRDB (upconv4): only 4× and 8× are supported")
    return {"nf": first.shape[0], "gc": conv1.shape[0], "nb": len(trunk),
            "scale": 8 if prefix + "upconv3.weight" in state else 4, "channels": first.shape[1]}


def _flow_layers(state: Mapping[str, Tensor]) -> list[tuple[int, str]]:
    """The reference's layer list as ``(index, kind)``: squeeze / extra / step / split."""
    keys: dict[int, set[str]] = {}
    for k in state:
        m = _LAYER.fullmatch(k)
        if m:
            keys.setdefault(int(m.group(1)), set()).add(m.group(2))
    out = []
    for i in range(max(keys, default=-1) + 1):
        names = keys.get(i, set())
        kind = ("squeeze" if not names else "step" if any(n.startswith("affine.") for n in names)
                else "extra" if "actnorm.bias" in names else "split" if "conv.weight" in names else "?")
        if kind == "?":
            raise CheckpointError(f"{CODE} checkpoint: flowUpsamplerNet.layers.{i} ({sorted(names)}) is no layer we know")
        out.append((i, kind))
    return out


def _flow_arch(state: Mapping[str, Tensor], layers: list[tuple[int, str]]) -> dict[str, Any]:
    levels: list[list[str]] = []
    for _, kind in layers:
        if kind == "squeeze":
            levels.append([])
        elif not levels:
            raise CheckpointError(f"{CODE} checkpoint: the flow does not start with a squeeze")
        else:
            levels[-1].append(kind)
    extra = {lv.count("extra") for lv in levels}
    steps = {lv.count("step") for lv in levels}
    splits = [lvl for lvl, lv in enumerate(levels, 1) if "split" in lv]
    n = len(levels)
    if len(extra) != 1 or len(steps) != 1:
        raise CheckpointError(f"{CODE} checkpoint: levels differ in their numbers of steps ({levels})")
    if splits == list(range(1, n)):
        correct = True
    elif splits == list(range(1, n - 1)):
        correct = False
    else:
        raise CheckpointError(f"{CODE} checkpoint splits at levels {splits} of {n}: neither of SRFlow's split rules")
    first_step = next(i for i, kind in layers if kind == "step")
    hidden = state[f"flowUpsamplerNet.layers.{first_step}.affine.fFeatures.0.weight"].shape[0]
    feat = state[f"flowUpsamplerNet.layers.{first_step}.affine.fFeatures.0.weight"].shape[1]
    return {"levels": n, "steps": steps.pop(), "extra_steps": extra.pop(), "hidden": hidden,
            "correct_splits": correct, "_feature_channels": feat}


def _config(arch: dict[str, Any], user: Any) -> SRFlowConfig:
    if isinstance(user, SRFlowConfig):
        return user
    fields = {k: v for k, v in arch.items() if not k.startswith("_") and k != "channels"}
    fields["image_shape"] = (arch["channels"], 160, 160)
    fields.update(dict(user or {}))
    if "rrdb_blocks" not in fields:
        n_blocks = arch["_feature_channels"] // arch["nf"] - 1 if "_feature_channels" in arch else 4
        blocks = KNOWN_BLOCKS.get((arch["nb"], arch["scale"]))
        if blocks is None or len(blocks) != n_blocks:
            raise CheckpointError(f"{CODE} checkpoint (nb={arch['nb']}, {arch['scale']}×, {n_blocks} stacked blocks) "
                                  f"is no released layout: pass config={{'rrdb_blocks': [...]}} (opt stackRRDB.blocks)")
        fields["rrdb_blocks"] = blocks
    return SRFlowConfig.from_dict(fields)


def _actnorm(src: Mapping[str, Tensor], ref: str, ours: str, shift: float = 0.0) -> dict[str, Tensor]:
    """(x + b)·e^l → x·e^l + b·e^l (with ``shift`` added to the input first); computed in float64."""
    logs = src[ref + "logs"].to(torch.float64)
    return {ours + "log_scale": logs, ours + "bias": (src[ref + "bias"].to(torch.float64) + shift) * torch.exp(logs)}


def _net(src: Mapping[str, Tensor], ref: str, ours: str) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for j in (0, 2):  # conv → ActNorm, twice
        out[f"{ours}{j}.conv.weight"] = src[f"{ref}{j}.weight"]
        out.update(_actnorm(src, f"{ref}{j}.actnorm.", f"{ours}{j}.norm."))
    out[f"{ours}4.conv.weight"], out[f"{ours}4.conv.bias"] = src[f"{ref}4.weight"], src[f"{ref}4.bias"]
    out[f"{ours}4.logs"] = src[f"{ref}4.logs"].reshape(1, -1, 1, 1)
    return out


def _map_flow(src: Mapping[str, Tensor], layers: list[tuple[int, str]]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    level, j, first = -1, 0, True
    for i, kind in layers:
        r = f"flowUpsamplerNet.layers.{i}."
        if kind == "squeeze":
            level, j = level + 1, 1
            continue
        o = f"levels.{level}.layers."
        if kind == "split":
            out.update({f"priors.{level}.conv.conv.weight": src[r + "conv.weight"],
                        f"priors.{level}.conv.conv.bias": src[r + "conv.bias"],
                        f"priors.{level}.conv.logs": src[r + "conv.logs"].reshape(1, -1, 1, 1)})
            continue
        if kind == "extra":
            an, ic, j = f"{o}{j}.", f"{o}{j + 1}.", j + 2
        else:
            an, ic, j = f"{o}{j}.layers.0.", f"{o}{j}.layers.1.", j + 1
            out.update(_net(src, r + "affine.fFeatures.", f"{o}{j - 1}.layers.2.net.net."))
            out.update(_net(src, r + "affine.fAffine.", f"{o}{j - 1}.layers.3.net.net."))
        out.update(_actnorm(src, r + "actnorm.", an, shift=0.5 if first else 0.0))
        out[ic + "weight"], first = src[r + "invconv.weight"], False
    return out


def _flags(own: Mapping[str, Tensor], mapped: dict[str, Tensor]) -> None:
    for k, v in own.items():
        if k.endswith("initialized"):
            mapped[k] = torch.ones_like(v)
    mapped["encoder_frozen"] = torch.zeros_like(own["encoder_frozen"])


@register_reference("srflow", "andreas128/SRFlow")
def load_srflow(state: Mapping[str, Any], config: Any = None, dtype: torch.dtype | None = None) -> SRFlowModel:
    """A whole SRFlowNet or an RRDB-only state dict → :class:`SRFlowModel` in eval mode (see the module
    docstring), its parameters in ``dtype`` (default: torch's default dtype)."""
    src = _Reader(state)
    whole = any(k.startswith("flowUpsamplerNet.") for k in src)
    prefix = "RRDB." if whole else ""
    arch = _rrdb_arch(src, prefix)
    if whole:
        layers = _flow_layers(src)
        arch.update(_flow_arch(src, layers))
    else:
        arch.update(RELEASED_FLOW[arch["scale"]])
    cfg = _config(arch, config)
    if cfg.attention != "none":
        raise CheckpointError(f"{CODE} has no attention layers: load it into a config with attention='none'")
    model = SRFlowModel(cfg).to(dtype or torch.get_default_dtype())
    own = model.state_dict()
    mapped = {k: src[prefix + k[len(ENC):]] for k in own if k.startswith(ENC) and prefix + k[len(ENC):] in src}
    if whole:
        mapped.update(_map_flow(src, layers))
        _flags(own, mapped)
    else:  # the flow keeps its fresh initialisation (its ActNorms still initialise on the first training batch)
        mapped.update({k: v for k, v in own.items() if not k.startswith(ENC)})
    check_all_used(CODE, src, src.used, IGNORED)
    assign(model, mapped, CODE)
    return model.eval()


def reference_encode(model: SRFlowModel, hr: Tensor, lr: Tensor) -> tuple[list[Tensor], Tensor]:
    """SRFlow's ``epses`` and log-det of ``hr`` in [0, 1] given ``lr`` in [0, 1]: each split's standardised
    latent :math:`(z - \\mu)/\\sigma` (its prior's log-density counted in the log-det, as the reference does),
    finest first, then the top latent."""
    zs, contexts, logdet = model.encode(hr - 0.5, lr)
    epses = []
    for prior, z, ctx in zip(model.priors, zs, contexts):
        if z is None:
            continue
        if ctx is None:  # the top latent: N(0, I)
            epses.append(z)
            continue
        mean, log_std = prior.gaussian_params(tuple(z.shape), ctx, None)
        epses.append((z - mean) * torch.exp(-log_std))
        logdet = logdet + prior.log_prob(z, ctx)
    return epses, logdet


@torch.no_grad()
def reference_decode(model: SRFlowModel, lr: Tensor, epses: list[Tensor]) -> Tensor:
    """SRFlow's reverse pass: HR in [0, 1] from ``epses`` (the layout of :func:`reference_encode`)."""
    splits = [lvl for lvl, shape in enumerate(model.latent_shapes[:-1]) if shape is not None]
    if len(epses) != len(splits) + 1:
        raise CheckpointError(f"this model takes {len(splits) + 1} epses (splits at levels {splits} and the top), "
                              f"got {len(epses)}")
    model.check_lr(lr, epses[-1].shape[0])
    enc = model._encode_cond(lr)
    given = dict(zip(splits, epses[:-1]))
    h = epses[-1]
    for lvl in reversed(range(len(model.levels))):
        if lvl in given:
            mean, log_std = model.priors[lvl].gaussian_params(tuple(given[lvl].shape), h, None)
            h = torch.cat([h, mean + torch.exp(log_std) * given[lvl]], dim=1)
        h = model._level_inverse(lvl, h, enc)
    return h + 0.5


def reference_nll(model: SRFlowModel, hr: Tensor, lr: Tensor, quant: int | None = None) -> Tensor:
    r"""SRFlow's per-sample "nll" of ``hr`` in [0, 1]: :math:`-\log p(\tilde x \mid lr) / (H W \ln 2)` in
    bits per **pixel** (``H·W``, channels not counted). Without ``quant`` (the released training and
    validation path) :math:`\tilde x = hr`; with ``quant`` (``add_gt_noise=True``, quant 32 in the released
    configs) :math:`\tilde x = hr + (u - \tfrac12)/\text{quant}`, ``u = torch.rand(hr.shape)`` from the global
    RNG, and the log-density gets :math:`-H W \ln(\text{quant})`: the reference counts ``H·W`` there too, not
    ``C·H·W``."""
    pixels = hr.shape[2] * hr.shape[3]
    x, extra = hr, 0.0
    if quant is not None:
        x = hr + (torch.rand(hr.shape, dtype=hr.dtype, device=hr.device) - 0.5) / quant
        extra = -pixels * math.log(quant)
    return -(model.log_prob(x - 0.5, lr) + extra) / (math.log(2.0) * pixels)


__all__ = ["load_srflow", "reference_decode", "reference_encode", "reference_nll"]
