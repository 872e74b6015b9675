r"""State dicts of the mARFlow code (visinf/mar-scf, ``MarScfFlow.state_dict()``) on our :class:`FlowModel`.

Reparameterisations, reference → ours (``l`` a log-scale, ``b`` a bias):

* ActNorm and the coupling net's normalised convs: theirs :math:`(x + b)\,e^{l}`, ours :math:`x\,e^{l} + b'`,
  so ``log_scale = l`` and :math:`b' = b\,e^{l}`; ``is_initialized > 0`` becomes ``initialized``.
* 1×1 conv: the same LU factors (``l``, ``u``, ``log_s``, ``sign_s``). Their mixture-logistic step transforms
  the *first* half conditioned on the second and then swaps the halves (``TupleFlip``); ours transforms the
  second half. Swapping the halves before the coupling is a fixed permutation ``S``, absorbed into the
  conv: :math:`W' = S W`, i.e. ``perm = S p`` (``S`` has no log-det). The affine step needs no swap.
* Weight norm: theirs (``weight_g``, ``weight_v``, ``torch.nn.utils.weight_norm``) and ours
  (``parametrizations.weight.original0/1``) are both :math:`W = g\,v/\lVert v\rVert` over dim 0: copied as is.
* Attention ``in_proj``: their rows are ``[k; v; q]`` (memory first, then query), ours ``[q; k; v]``.
* Zero conv ``logs``: shape ``(C, 1, 1)`` → ``(1, C, 1, 1)``. ConvLSTM: ``weight_ih_l{j}`` → ``lstm.ih.{j}``
  (same gate order i, f, g, o); ``conv_embed`` → ``embed``, ``conv_out1`` → ``out``, ``z1_cond_network`` → ``cond_net``.

Deliberately unused: the top level's ``flow.c_prior.prior_list.{L-1}.z1_cond_network.*`` (built by the
reference but never called: the top latent has no kept half; 41,636 parameters at 3×32×32, L = 3). Any
other key we cannot place raises :class:`~attnflow_core.core.errors.CheckpointError` listing it.

Scoring: the reference feeds :math:`p/255 - 1/2 + u/256` (``ToTensor``, ``Normalize(0.5, 1)``, then
``U(0, 1/256)``), ours :math:`(p + u)/256 - 1/2`: 0.007–0.009 bits/dim apart at the same weights.
``scoring="marscf"`` returns a model whose ``bits_per_dim`` follows theirs, to reproduce a number it prints.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor

from ...core.errors import CheckpointError
from ..multiscale import FlowConfig, FlowModel
from . import assign, check_all_used, register_reference

CODE = "mar-scf"


class MarScfScoredFlow(FlowModel):
    r""":class:`FlowModel` whose 8-bit scoring follows mar-scf: :math:`\tilde x = p/255 - 1/2 + u/256`,
    :math:`u \sim U(0, 1)` (``noise`` may also be the tensor ``u`` itself); bits/dim as ours,
    :math:`-(\log p(\tilde x) - D\log 256)/(D \ln 2)`, which is the reference's formula.

    References: Mahajan et al., "Normalizing flows with multiscale autoregressive priors", CVPR 2020."""

    def dequantize(self, x: Tensor, noise: bool | Tensor = True) -> Tensor:
        p = x.to(super().dequantize(x, noise=False).dtype)  # the parent checks the range and picks the dtype
        if isinstance(noise, Tensor):
            u = noise.to(p)
        else:
            u = torch.rand_like(p) if noise else torch.full_like(p, 0.5)
        return p / 255.0 - 0.5 + u / 256.0


def _strip(state: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Keys without the ``module.`` (DataParallel) and ``flow.`` prefixes, and each one's original name."""
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    out, names = {}, {}
    for key, v in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        k = k[len("flow."):] if k.startswith("flow.") else k
        out[k], names[k] = v, key
    return out, names


def _indices(sd: Mapping[str, Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (group 1) at the start of the keys."""
    found = (re.match(pattern, k) for k in sd)
    return sorted({int(m.group(1)) for m in found if m})


def _count(sd: Mapping[str, Tensor], pattern: str) -> int:
    return len(_indices(sd, pattern))


def infer_config(sd: Mapping[str, Tensor], image_hw: tuple[int, int] = (32, 32)) -> dict[str, Any]:
    """Our config fields read off a (prefix-stripped) mar-scf state dict; the image size is not in it."""
    levels = _count(sd, r"c_prior\.prior_list\.(\d+)\.")
    steps_idx = _indices(sd, r"layers\.(\d+)\.actnormlayer\.")
    if not levels or not steps_idx:
        raise CheckpointError(f"{CODE}: no flow steps or priors found (keys such as 'flow.layers.1.actnormlayer.logs' "
                              f"and 'flow.c_prior.prior_list.0...'); is this a mar-scf MarScfFlow state dict?")
    first = steps_idx[0]
    c = sd[f"layers.{first}.actnormlayer.logs"].shape[1] // 4
    cfg: dict[str, Any] = dict(backbone="marflow", levels=levels, steps=len(steps_idx) // levels,
                               image_shape=(c, *image_hw))
    p = f"layers.{first}.coupling."
    if f"{p}NN_net.conv1.weight" in sd:
        cfg.update(coupling="affine", hidden=sd[f"{p}NN_net.conv1.weight"].shape[0])
    elif f"{p}nn.in_conv.conv.weight_v" in sd:
        cin = sd[f"{p}nn.in_conv.conv.weight_v"].shape[1]
        cfg.update(coupling="mixlogistic", hidden=sd[f"{p}nn.in_conv.conv.weight_v"].shape[0],
                   components=(sd[f"{p}nn.out_conv.conv.weight_v"].shape[0] // cin - 2) // 3,
                   blocks=_count(sd, re.escape(p) + r"nn\.mid_convs\.(\d+)\."),
                   coupling_attention=f"{p}nn.mid_convs.0.attn.in_proj.weight_v" in sd)
    else:
        raise CheckpointError(f"{CODE}: cannot tell the coupling of step {first} (no NN_net or nn keys)")
    q = "c_prior.prior_list.0.prior_lstm."
    cfg.update(prior_hidden=sd[f"{q}conv_embed.weight"].shape[0],
               prior_layers=_count(sd, re.escape(q) + r"lstm\.weight_ih_l(\d+)$"))
    return cfg


def _config(sd: Mapping[str, Tensor], config: Any) -> FlowConfig:
    given = asdict(config) if isinstance(config, FlowConfig) else dict(config or {})
    shape = tuple(given.get("image_shape", (0, 32, 32)))
    inferred = infer_config(sd, (shape[1], shape[2]))
    clash = [f"{k}: config {given[k]!r}, checkpoint {v!r}" for k, v in inferred.items()
             if k in given and (tuple(given[k]) if k == "image_shape" else given[k]) != v]
    if clash:
        raise CheckpointError(f"{CODE} checkpoint does not match the config given: {'; '.join(clash)}")
    return FlowConfig.from_dict({**given, **inferred})


def _swap_halves(c: int) -> Tensor:
    idx = torch.cat([torch.arange(c // 2, c), torch.arange(c // 2)])
    return torch.eye(c, dtype=torch.float64)[idx]


class _Mapper:
    """Collects ``ours -> tensor`` and the reference keys it read."""

    def __init__(self, sd: Mapping[str, Tensor]) -> None:
        self.sd, self.out, self.used = sd, {}, set()

    def get(self, key: str) -> Tensor:
        if key not in self.sd:
            raise CheckpointError(f"{CODE} checkpoint lacks the key 'flow.{key}' that our model needs")
        self.used.add(key)
        return self.sd[key].detach().to(torch.float64)

    def copy(self, ours: str, theirs: str) -> None:
        self.out[ours] = self.get(theirs)

    def normalised(self, ours: str, theirs: str) -> None:  # (x + b)·e^l → x·e^l + b·e^l
        logs = self.get(f"{theirs}.logs")
        self.out[f"{ours}.log_scale"] = logs
        self.out[f"{ours}.bias"] = self.get(f"{theirs}.bias") * torch.exp(logs)
        self.out[f"{ours}.initialized"] = (self.get(f"{theirs}.is_initialized") > 0).reshape(())

    def wn(self, ours: str, theirs: str, bias: bool = True, rows: Tensor | None = None) -> None:
        g, v = self.get(f"{theirs}.weight_g"), self.get(f"{theirs}.weight_v")
        if rows is not None:
            g, v = g[rows], v[rows]
        self.out[f"{ours}.parametrizations.weight.original0"] = g
        self.out[f"{ours}.parametrizations.weight.original1"] = v
        if bias:
            self.copy(f"{ours}.bias", f"{theirs}.bias")


def _map_mixlogistic_net(m: _Mapper, ours: str, theirs: str, blocks: int, attention: bool) -> None:
    m.wn(f"{ours}.inp", f"{theirs}.in_conv.conv")
    for j in range(blocks):
        o, t = f"{ours}.blocks.{j}", f"{theirs}.mid_convs.{j}"
        m.wn(f"{o}.conv.conv", f"{t}.conv.conv.conv")
        m.wn(f"{o}.conv.gate", f"{t}.conv.gate.conv")
        for a, b in (("norm1", "norm_1"), ("norm2", "norm_2"))[: 2 if attention else 1]:
            m.copy(f"{o}.{a}.weight", f"{t}.{b}.weight")
            m.copy(f"{o}.{a}.bias", f"{t}.{b}.bias")
        if attention:
            c = m.sd[f"{t}.attn.in_proj.weight_v"].shape[1]
            qkv = torch.cat([torch.arange(2 * c, 3 * c), torch.arange(0, 2 * c)])  # theirs [k; v; q]
            m.wn(f"{o}.attn.in_proj", f"{t}.attn.in_proj", bias=False, rows=qkv)
            m.wn(f"{o}.attn.gate", f"{t}.attn.gate")
    m.wn(f"{ours}.out", f"{theirs}.out_conv.conv")
    m.wn(f"{ours}.rescale", f"{theirs}.rescale", bias=False)


def _map(model: FlowModel, sd: Mapping[str, Tensor], cfg: FlowConfig) -> tuple[dict[str, Tensor], set[str], list[str]]:
    m, own = _Mapper(sd), model.state_dict()
    idx = 0  # reference layer index: per level a squeeze, K steps, then a split (not after the last level)
    for lvl in range(cfg.levels):
        for k in range(cfg.steps):
            o, t = f"levels.{lvl}.layers.{k + 1}.layers", f"layers.{idx + 1 + k}"
            m.normalised(f"{o}.0", f"{t}.actnormlayer")
            for a, b in (("lower", "l"), ("upper", "u"), ("log_s", "log_s"), ("sign_s", "sign_s")):
                m.copy(f"{o}.1.{a}", f"{t}.invert_1x1_layer.{b}")
            p = m.get(f"{t}.invert_1x1_layer.p")
            m.out[f"{o}.1.perm"] = _swap_halves(p.shape[0]) @ p if cfg.coupling == "mixlogistic" else p
            for buf in ("lower_mask", "eye"):  # derived buffers the reference keeps as plain attributes
                m.out[f"{o}.1.{buf}"] = own[f"{o}.1.{buf}"]
            if cfg.coupling == "affine":
                for a, b in (("0", "conv1"), ("2", "conv2")):
                    m.copy(f"{o}.2.net.net.{a}.conv.weight", f"{t}.coupling.NN_net.{b}.weight")
                    m.normalised(f"{o}.2.net.net.{a}.norm", f"{t}.coupling.NN_net.{b}.actnorm")
                m.copy(f"{o}.2.net.net.4.conv.weight", f"{t}.coupling.NN_net.conv3.weight")
                m.copy(f"{o}.2.net.net.4.conv.bias", f"{t}.coupling.NN_net.conv3.bias")
                m.out[f"{o}.2.net.net.4.logs"] = m.get(f"{t}.coupling.NN_net.conv3.logs").reshape(1, -1, 1, 1)
            else:
                _map_mixlogistic_net(m, f"{o}.2.net", f"{t}.coupling.nn", cfg.blocks, cfg.coupling_attention)
        idx += cfg.steps + (1 if lvl == cfg.levels - 1 else 2)
        o, t = f"priors.{lvl}", f"c_prior.prior_list.{lvl}"
        if lvl < cfg.levels - 1:
            for j in ("0", "2"):
                m.copy(f"{o}.cond_net.{j}.weight", f"{t}.z1_cond_network.{j}.weight")
                m.copy(f"{o}.cond_net.{j}.bias", f"{t}.z1_cond_network.{j}.bias")
        for a, b in (("embed", "conv_embed"), ("out", "conv_out1")):
            m.copy(f"{o}.{a}.weight", f"{t}.prior_lstm.{b}.weight")
            m.copy(f"{o}.{a}.bias", f"{t}.prior_lstm.{b}.bias")
        for j in range(cfg.prior_layers):
            for a, b in (("ih", "ih"), ("hh", "hh")):
                m.copy(f"{o}.lstm.{a}.{j}.weight", f"{t}.prior_lstm.lstm.weight_{b}_l{j}")
                m.copy(f"{o}.lstm.{a}.{j}.bias", f"{t}.prior_lstm.lstm.bias_{b}_l{j}")
    top = f"c_prior.prior_list.{cfg.levels - 1}.z1_cond_network."
    return m.out, m.used, [k for k in sd if k.startswith(top)]


@register_reference("marscf", "visinf/mar-scf")
def load_marscf(state: Mapping[str, Any], config: Any = None, scoring: str = "ours") -> FlowModel:
    """Our mARFlow (:class:`FlowModel`, ``backbone="marflow"``) with the weights of a mar-scf state dict
    (keys ``flow.layers.*`` and ``flow.c_prior.*``, optionally under ``module.`` or ``{"state_dict": ...}``).

    ``config``: a :class:`FlowConfig` or dict; levels, steps, widths, components, blocks and prior sizes are
    read off the checkpoint (a config that disagrees raises), the image size is taken from ``config``
    (default the reference's 32×32; channels from the checkpoint). ``scoring="marscf"`` returns a
    :class:`MarScfScoredFlow` (mar-scf's dequantisation in ``bits_per_dim``). The module docstring lists
    every reparameterisation and the keys deliberately left unused. Returned in evaluation mode, float64."""
    if scoring not in ("ours", "marscf"):
        raise CheckpointError(f"scoring must be 'ours' or 'marscf', got {scoring!r}")
    sd, names = _strip(state)
    cfg = _config(sd, config)
    model = (MarScfScoredFlow if scoring == "marscf" else FlowModel)(cfg).double()
    mapped, used, unused = _map(model, sd, cfg)
    check_all_used(CODE, names.values(), (names[k] for k in used), (names[k] for k in unused))
    assign(model, mapped, CODE)
    return model.eval()


__all__ = ["MarScfScoredFlow", "infer_config", "load_marscf"]
