r"""Full-Glow checkpoints written by ``MoeinSorkhei/glow2`` (its ``TwoGlows`` model, ``--model improved``,
``--do_lu``) mapped onto our :class:`~attnflow_core.models.fullglow.FullGlow`, and glow2's bits/dim.

**Key map** (glow2 ``{left,right}_glow.blocks.{l}.flows.{k}.`` → ours ``conditioner.left.levels.{l}.layers.{k+1}.``
for the left Glow and ``levels.{l}.layers.{k+1}.`` for the right one; ``layers.0/1/2`` = ActNorm, 1×1 conv,
coupling; ``blocks.{l}.gaussian`` → ``priors.{l}.conv``):

* ActNorm ``y = scale·(x + loc)`` → ``y = x·e^ℓ + b`` with :math:`\ell = \log \mathrm{scale}`,
  :math:`b = \mathrm{scale}\cdot\mathrm{loc}`; a non-positive ``scale`` (glow2 allows any sign; our ``e^ℓ``
  cannot) is an error naming the key.
* Conditional ActNorm: ``cond_net.conv_net.conv_net.{0,2,4}`` → ``net.conv.{0,2,4}``,
  ``cond_net.linear_net.linear_net.{0,2,4}`` → ``net.mlp.{0,2,4}``, ``….6.linear`` → ``net.last``
  (outputs ``[s, t]`` in both), ``….6.initialized`` → ``initialized``.
* LU 1×1 conv: ``w_l, w_u, w_s`` → ``lower, upper, log_s``; buffers ``w_p, s_sign, l_mask, l_eye`` →
  ``perm, sign_s, lower_mask, eye``; the conditional one's net as above (outputs ``[L, U, log|s|]`` in both).
* Coupling ``net.{0,2}`` → ``net.conv1/conv2``, ``net.4.{conv, scale}`` → ``net.out.{conv, logs}`` (the same
  :math:`e^{3\cdot\mathrm{scale}}` gain), ``cond_net.conv_net.{0,2}`` → ``cond_net.net.{0,2}``.
* Data space: glow2's images lie in :math:`[0, 1]` (``k/255 + u/256``), ours in :math:`[-\tfrac12, \tfrac12]`.
  The loader adds :math:`\tfrac12` to the shift of the first ActNorm of each Glow (``loc`` of the left one, the
  ``t`` half of the right conditioner's last bias), so that every activation, latent and log-density is
  glow2's for inputs shifted by :math:`-\tfrac12` (the shift has unit Jacobian).

Deliberately unused: ``*.inv_conv.u_mask`` (the transpose of ``l_mask``; checked), and the non-model entries of
a training checkpoint (``loss``, ``lr``, ``optimizer_state_dict``). Not supported, each with an error:
checkpoints trained without ``--do_lu`` (a predicted full 1×1 matrix has no LU form of our kind), with
boundary maps (``--use_bmaps``), or with different step counts per block.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.errors import CheckpointError
from ..fullglow import FullGlow, FullGlowConfig
from . import assign, check_all_used, register_reference

_CODE = "glow2 (Full-Glow)"
_NET = {"conv_net.conv_net": "net.conv", "linear_net.linear_net.6.linear": "net.last",
        "linear_net.linear_net": "net.mlp"}
_LU_BUFFERS = {"w_p": "perm", "s_sign": "sign_s", "l_mask": "lower_mask", "l_eye": "eye"}
IGNORED_SUFFIXES = (".inv_conv.u_mask",)


def _unwrap(state: Mapping[str, Any]) -> dict[str, Tensor]:
    if "model_state_dict" in state:  # glow2's save_checkpoint: {loss, lr, model_state_dict, optimizer_state_dict}
        state = state["model_state_dict"]
    out = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    bad = sorted(k for k, v in out.items() if not isinstance(v, Tensor))
    if bad:
        raise CheckpointError(f"{_CODE} checkpoint entries that are not tensors: {bad[:10]}")
    return out


def infer_config(state: Mapping[str, Tensor]) -> FullGlowConfig:
    """Our config of a glow2 state dict: channels from the first ActNorm, levels and steps from the block and
    flow indices, widths from the coupling convs, and a **square** image from the first conditioning Linear
    (:math:`2(H/2-4)^2` inputs); pass ``config`` for non-square images."""
    blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("right_glow.blocks.")})
    if not blocks or not any(k.startswith("left_glow.blocks.") for k in state):
        raise CheckpointError(f"not a {_CODE} TwoGlows state dict: no 'left_glow.blocks.*' / 'right_glow.blocks.*' keys")
    steps = {b: len({k.split(".")[4] for k in state if k.startswith(f"right_glow.blocks.{b}.flows.")}) for b in blocks}
    if len(set(steps.values())) != 1:
        raise CheckpointError(f"{_CODE} checkpoint has different step counts per block {steps}; ours has one count")
    if "left_glow.blocks.0.flows.0.inv_conv.weight" in state:
        raise CheckpointError(f"{_CODE} checkpoint was trained without --do_lu (full 1×1 matrices); only LU "
                              f"checkpoints (the paper's Table 5 model) map onto our LU 1×1 convs")
    p = "right_glow.blocks.0.flows.0."
    c4 = state["left_glow.blocks.0.flows.0.act_norm.loc"].shape[1]
    cc = state[p + "coupling.cond_net.conv_net.0.weight"].shape[1]
    if cc != c4:
        raise CheckpointError(f"{_CODE} conditioning nets read {cc} channels where the left Glow has {c4}: a "
                              f"checkpoint with boundary maps (--use_bmaps), which our Full-Glow does not have")
    n = state[p + "act_norm.cond_net.linear_net.linear_net.0.weight"].shape[1] // 2
    side = math.isqrt(n)
    if side * side != n:
        raise CheckpointError(f"cannot infer a square image from the {_CODE} checkpoint (first conditioning Linear "
                              f"has {2 * n} inputs): pass config with image_shape")
    return FullGlowConfig(image_shape=(c4 // 4, 2 * (side + 4), 2 * (side + 4)), label_channels=c4 // 4,
                          levels=len(blocks), steps=steps[0],
                          hidden=state[p + "coupling.net.0.weight"].shape[0],
                          cond_hidden=state[p + "coupling.cond_net.conv_net.0.weight"].shape[0])


def _map_glow(state: Mapping[str, Tensor], side: str, ours: str, cfg: FullGlowConfig,
              used: set[str]) -> dict[str, Tensor]:
    """One Glow's keys (``side`` = ``left_glow`` / ``right_glow``) → ours under prefix ``ours``; every glow2
    key read goes into ``used``."""
    out: dict[str, Tensor] = {}
    for lvl in range(cfg.levels):
        g = f"{side}.blocks.{lvl}.gaussian."
        used.update(g + n for n in ("scale", "conv.weight", "conv.bias"))
        out.update({f"{ours}priors.{lvl}.conv.logs": state[g + "scale"],
                    f"{ours}priors.{lvl}.conv.conv.weight": state[g + "conv.weight"],
                    f"{ours}priors.{lvl}.conv.conv.bias": state[g + "conv.bias"]})
        for k in range(cfg.steps):
            r, o = f"{side}.blocks.{lvl}.flows.{k}.", f"{ours}levels.{lvl}.layers.{k + 1}.layers."
            first = lvl == 0 and k == 0  # absorbs the [0, 1] → [-1/2, 1/2] data shift
            for key, v in state.items():
                if not key.startswith(r):
                    continue
                rest = key[len(r):]
                if rest.startswith(("act_norm.cond_net.", "inv_conv.cond_net.")):
                    layer, tail = ("0", rest[len("act_norm.cond_net."):]) if rest.startswith("act_norm") \
                        else ("1", rest[len("inv_conv.cond_net."):])
                    if tail == "linear_net.linear_net.6.initialized" and layer == "0":
                        out[o + "0.initialized"] = v.bool()
                        used.add(key)
                        continue
                    for theirs, mine in _NET.items():
                        if tail.startswith(theirs):
                            out[o + layer + "." + mine + tail[len(theirs):]] = v
                            used.add(key)
                            break
                    if layer == "0" and first and tail.endswith("6.linear.bias"):
                        c = v.shape[0] // 2
                        out[o + "0.net.last.bias"] = torch.cat([v[:c], v[c:] + 0.5])
                elif rest.startswith("inv_conv."):
                    name = rest[len("inv_conv."):]
                    mine = {"w_l": "lower", "w_u": "upper", "w_s": "log_s", **_LU_BUFFERS}.get(name)
                    if mine is not None:
                        out[o + "1." + mine] = v
                        used.add(key)
                    elif name == "u_mask" and not torch.equal(v, state[r + "inv_conv.l_mask"].T):
                        raise CheckpointError(f"{_CODE} key {key} is not the transpose of l_mask")
                elif rest.startswith("coupling."):
                    tail = rest[len("coupling."):]
                    for theirs, mine in {"net.0.": "net.conv1.", "net.2.": "net.conv2.", "net.4.conv.": "net.out.conv.",
                                         "net.4.scale": "net.out.logs", "cond_net.conv_net.": "cond_net.net."}.items():
                        if tail.startswith(theirs):
                            out[o + "2." + mine + tail[len(theirs):]] = v
                            used.add(key)
                            break
            if side == "left_glow":
                scale, loc = state[r + "act_norm.scale"], state[r + "act_norm.loc"] + (0.5 if first else 0.0)
                if not bool((scale > 0).all()):
                    raise CheckpointError(f"{_CODE} key {r}act_norm.scale has non-positive entries; our ActNorm "
                                          f"scale e^ℓ is positive")
                out.update({o + "0.log_scale": torch.log(scale), o + "0.bias": scale * loc,
                            o + "0.initialized": state[r + "act_norm.initialized"].bool()})
                used.update(r + "act_norm." + n for n in ("scale", "loc", "initialized"))
    return out


@register_reference("fullglow", "MoeinSorkhei/glow2")
def load(state: Mapping[str, Any], config: Any = None, **options: Any) -> FullGlow:
    """Our :class:`FullGlow` holding a glow2 ``TwoGlows`` state dict (the module docstring has the key map).
    ``config``: our :class:`FullGlowConfig` (or dict); default :func:`infer_config`. The model is returned in
    eval mode, in ``dtype`` (option; default the checkpoint's floating dtype, at least float32); every
    reparameterisation is computed in float64 first."""
    dtype = options.pop("dtype", None)
    if options:
        raise CheckpointError(f"the fullglow loader takes only the option dtype, got {sorted(options)}")
    sd = _unwrap(state)
    if dtype is None:  # the checkpoint's floating dtype, at least float32
        dtype = max((v.dtype for v in sd.values() if v.is_floating_point()), key=lambda d: torch.finfo(d).bits)
        dtype = dtype if torch.finfo(dtype).bits >= 32 else torch.float32
    sd = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}  # reparameterise in float64
    cfg = infer_config(sd) if config is None else (config if isinstance(config, FullGlowConfig)
                                                   else FullGlowConfig.from_dict(config))
    if cfg.attention != "none":
        raise CheckpointError("glow2 checkpoints have no attention layers: use attention='none'")
    used: set[str] = set()
    try:
        mapped = {**_map_glow(sd, "left_glow", "conditioner.left.", cfg, used),
                  **_map_glow(sd, "right_glow", "", cfg, used)}
    except KeyError as e:
        raise CheckpointError(f"{_CODE} checkpoint lacks key {e} that a model of this config has") from None
    check_all_used(_CODE, sd, used, [k for k in sd if k.endswith(IGNORED_SUFFIXES)])
    model = FullGlow(cfg).to(dtype)
    assign(model, mapped, _CODE)
    return model.eval()


def glow2_bits_per_dim(model: FullGlow, photo: Tensor, label: Tensor, photo_noise: Tensor | None = None,
                       label_noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""Per-sample ``(bpd_left, bpd_right)`` in glow2's conventions (``trainer/loss.py``), for 8-bit ``photo``
    and ``label`` and noise ``u ~ U(0, 1)`` (drawn when not given):
    :math:`\tilde x = k/255 + u/256` for both (glow2's ``ToTensor`` + ``noise_added``), fed to the model as
    :math:`\tilde x - \tfrac12` (see the module docstring), and
    :math:`\mathrm{bpd} = -(\log p + \log|\det| - D \ln 256) / (D \ln 2)` with glow2's :math:`D = 3HW` whatever
    the channel count (its ``calc_loss`` counts 3 channels). glow2 prints the batch mean; at batch 1, its
    setting, that is this value (at batch > 1 its conditional LU layers fail, and its conditional ActNorm
    spreads the batch-mean log-det over the samples).
    Our :meth:`FullGlow.bits_per_dim` differs: :math:`(k + u)/256`, and :math:`D` = the photo's dimensions."""
    dtype = next(model.parameters()).dtype
    if photo_noise is None:
        photo_noise = torch.rand(photo.shape, dtype=dtype, device=photo.device)
    if label_noise is None:
        label_noise = torch.rand(label.shape, dtype=dtype, device=label.device)
    model._check_label(label)
    xm = (photo.to(dtype) / 255 + photo_noise.to(dtype) / 256) - 0.5
    cm = (label.to(dtype) / 255 + label_noise.to(dtype) / 256) - 0.5
    model._check_input(xm, label)
    lp_a, lp_b = model._joint(xm, model.conditioner.encode(cm))  # the label may exceed 1/2 by up to 1/256
    d = 3 * photo.shape[-2] * photo.shape[-1]
    bpd = lambda lp: -(lp - d * math.log(256.0)) / (d * math.log(2.0))
    return bpd(lp_a), bpd(lp_b)
