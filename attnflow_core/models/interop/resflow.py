r"""Residual Flows checkpoints (rtqichen/residual-flows, ``train_img.py``) on our :class:`ResFlowModel`.

**Layout read.** ``{"state_dict", "ema", "args", ...}`` as ``train_img.py`` saves it (or a bare state dict), for
its density models with ``--block resblock --factor-out False --squeeze-first False --padding 0 --vnorms 2222
--actnorm True`` (the CIFAR-10 / MNIST commands of its README): ``transforms.{s}.chain.{j}`` holds, per scale,
[LogitTransform (no tensors)], [ActNorm2d], ``n`` × [iResBlock, ActNorm2d], [Squeeze] and, in the last scale,
FC iResBlocks with ``FCWrapper(ActNorm1d)``. Other layouts raise :class:`CheckpointError`.

**Reparameterisations (all explicit).**

* ActNorm ``(x + b)·e^{w}`` (keys ``weight``, ``bias``): our :class:`FlooredActNorm` ``(x + b)·e^{s}`` with
  ``s = w``, ``b = b`` (reshaped per channel, or per element for ``ActNorm1d``); ``initialized`` → our flag.
* Swish ``x·sigmoid(softplus(β)x)/1.1`` (``beta``): our LipSwish's ``beta_raw = β``.
* Spectral layers (``InducedNormConv2d`` / ``InducedNormLinear`` with 2-norms): the reference evaluates with
  :math:`\bar W = W / \max(1, \hat\sigma / c)`, :math:`\hat\sigma = u^\top W v` from the stored ``u, v``
  (flattened; ``spatial_dims`` gives their map size), after ``update_lipschitz`` (power iteration from
  ``u, v`` until the RMS change of both is below ``atol + rtol·max``, ``--sn-tol``, at most 200 rounds; run here
  too, ``sn_update=True``). We store :math:`\bar W` as our raw weight and ``u, v`` as our warm start; our layer
  then certifies it. Our coefficient is ``c·(1 + coeff_slack)`` (default ``1e-8``): the reference's
  :math:`\bar W` has norm ``c`` up to its power-iteration error, and our certified bound adds ~1e-9 of rounding
  margin, so with the bare ``c`` ours would shrink it by that margin again. The certificate holds for the
  slackened coefficient. ``model.reference_report["extra_shrink"]`` is the largest factor by which our
  certificate still shrank a reference weight (1 when it used them all as they are).
* Weights: ``weights="ema"`` (default when the file has them; what the reference evaluates and samples with)
  takes the parameters from ``ema.shadow_params``, ``"train"`` those of ``state_dict``.

**Read into the configuration**: ``geom_p`` (logit of ``p``) and ``lamb`` of every iResBlock (never trained)
give the roulette's ``p`` and ``λ``; ``args`` (when present) gives ``coeff``, ``n_dist``,
``n_exact_terms``, ``n_samples``, ``sn_tol`` and the logit ``α`` (``1e-6`` for MNIST, else ``0.05``; without
``args``: 0.05, or pass ``config``). **Deliberately unused keys**: ``last_n_samples``, ``last_firmom``,
``last_secmom`` (training statistics of the estimator), the spectral layers' ``scale`` (the last ``σ̂``,
recomputed from ``u, v``) and their ``initialized`` flag (checked: an uninitialised layer is an error).

**Conventions.** The reference's data are ``x ∈ [0, 1]``, ours ``x − 1/2``; its ``logpx = log N(z) + Σ log-det``
and bits/dim ``−(logpx − D ln 256)/(D ln 2)`` are our ``log_prob`` and ``bits_per_dim``; in evaluation mode both
estimate the log-det with the roulette and 20 exact terms (our default ``n_exact_eval``). For a deterministic
number, set ``logdet={"method": "exact"}`` on small inputs. The model is returned in float64 (``.float()`` for
speed), in evaluation mode.

Example (an official file pickles the reference's EMA class; :func:`read_checkpoint` reads it without that code):
    >>> from attnflow_core.models import load_reference
    >>> from attnflow_core.models.interop.resflow import read_checkpoint
    >>> model = load_reference(read_checkpoint("resflow_cifar10.pth"), family="resflow")  # doctest: +SKIP
    >>> bpd = model.bits_per_dim(test_images_uint8)  # doctest: +SKIP
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.errors import CheckpointError
from ...flows.elementwise import FlooredActNorm
from ...flows.residual import ResidualBlock
from ...nn.lipschitz import LipSwish, SpectralConv2d, SpectralLinear, SpectralNormed, refresh_spectral_norms
from ..resflow import ResFlowConfig, ResFlowModel
from . import assign, check_all_used, register_reference

CODE = "Residual Flows (rtqichen/residual-flows)"
UNUSED = ("last_n_samples", "last_firmom", "last_secmom")
_KEY = re.compile(r"^transforms\.(\d+)\.chain\.(\d+)\.(.+)$")


class _Stub:
    """Stands in for the reference's own classes (its EMA object) when reading a checkpoint without its code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if module.split(".")[0] in ("lib", "resflows", "__main__"):
                return _Stub
            raise


class _PickleModule:
    Unpickler = _Unpickler
    load = staticmethod(pickle.load)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``train_img.py`` checkpoint read without the reference code (its EMA object becomes a stub holding
    ``shadow_params``). Official ``.pth`` files pickle that object, which plain ``torch.load`` cannot rebuild."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=False, pickle_module=_PickleModule)
    except Exception as e:
        raise CheckpointError(f"cannot read {p} as a Residual Flows checkpoint: {e}") from None


def _arg(args: Any, name: str, default: Any) -> Any:
    if isinstance(args, Mapping):
        return args.get(name, default)
    return getattr(args, name, default) if args is not None else default


def _units(state: Mapping[str, Tensor]) -> list[tuple[str, str, dict[int, str]]]:
    """The reference's parametrised flow layers in order: ``(kind, prefix, {module index: key prefix})``."""
    chain: dict[tuple[int, int], list[str]] = {}
    for k in state:
        m = _KEY.match(k)
        if m:
            chain.setdefault((int(m.group(1)), int(m.group(2))), []).append(m.group(3))
    units = []
    for (s, j), rests in sorted(chain.items()):
        prefix = f"transforms.{s}.chain.{j}."
        if any(r.startswith("nnet.") for r in rests):
            sub = "nnet.nnet." if any(r.startswith("nnet.nnet.") for r in rests) else "nnet."
            mods = sorted({int(r[len(sub):].split(".")[0]) for r in rests if r.startswith(sub)})
            units.append(("fc" if sub == "nnet.nnet." else "conv", prefix, {i: f"{prefix}{sub}{i}." for i in mods}))
        elif any(r.startswith("fc_module.") for r in rests):
            units.append(("actnorm1d", prefix + "fc_module.", {}))
        else:
            units.append(("actnorm2d", prefix, {}))
    return units


def infer_config(state: Mapping[str, Tensor], args: Any = None) -> ResFlowConfig:
    """Our configuration of the architecture a Residual Flows state dict holds (module docstring)."""
    units = _units(state)
    blocks = [u for u in units if u[0] == "conv"]
    if not blocks:
        raise CheckpointError(f"{CODE}: no conv iResBlock under transforms.*.chain.*.nnet.* in this state dict")
    if _arg(args, "factor_out", False) or _arg(args, "squeeze_first", False) or _arg(args, "padding", 0):
        raise CheckpointError(f"{CODE}: --factor-out, --squeeze-first and --padding are not supported by this loader")
    convs = [p for i, p in sorted(blocks[0][2].items()) if p + "weight" in state]
    first = state[convs[0] + "weight"]
    h, w = (int(v) for v in state[convs[0] + "spatial_dims"]) if convs[0] + "spatial_dims" in state else (0, 0)
    scales = tuple(sum(1 for u in blocks if u[1].startswith(f"transforms.{s}.")) for s in
                   range(1 + max(int(u[1].split(".")[1]) for u in units)))
    fcs = [u for u in units if u[0] == "fc"]
    fc_hidden = int(state[next(p for i, p in sorted(fcs[0][2].items()) if p + "weight" in state) + "weight"].shape[0]) if fcs else 128
    act = "lipswish" if any(k.endswith(".beta") for k in state) else "elu"
    alpha = (1e-6 if _arg(args, "data", "") == "mnist" else 0.05) if _arg(args, "logit_transform", True) else None
    lamb = [float(v) for k, v in state.items() if k.endswith(".lamb")]
    geom = [float(torch.sigmoid(v)) for k, v in state.items() if k.endswith(".geom_p")]
    logdet = {"dist": _arg(args, "n_dist", "poisson"), "lam": lamb[0] if lamb else 2.0,
              "p": geom[0] if geom else 0.5, "n_exact": int(_arg(args, "n_exact_terms", 2)),
              "n_samples": int(_arg(args, "n_samples", 1)), "n_exact_eval": 20}
    return ResFlowConfig(arch="resflow", image_shape=(int(first.shape[1]), h, w), scales=scales,
                         hidden=int(first.shape[0]), kernels="-".join(str(state[p + "weight"].shape[-1]) for p in convs),
                         coeff=float(_arg(args, "coeff", 0.98)), activation=act, logit_alpha=alpha,
                         fc_blocks=len(fcs), fc_hidden=fc_hidden, logdet=logdet)


@torch.no_grad()
def _reference_update(w: Tensor, u: Tensor, v: Tensor, conv: bool, size: tuple[int, ...], tol: float,
                      max_iter: int = 200) -> tuple[Tensor, Tensor]:
    """The reference's ``update_lipschitz`` for one layer (module docstring): returns the new ``u, v``."""
    fwd = (lambda t: F.conv2d(t.view(1, w.shape[1], *size), w, padding=w.shape[-1] // 2).reshape(-1)) if conv \
        else (lambda t: w @ t)
    adj = (lambda t: F.conv_transpose2d(t.view(1, w.shape[0], *size), w, padding=w.shape[-1] // 2).reshape(-1)) \
        if conv else (lambda t: w.t() @ t)
    for _ in range(max_iter):
        u_new = F.normalize(fwd(v), dim=0)
        v_new = F.normalize(adj(u_new), dim=0)
        du, dv = (u_new - u).norm() / u.numel() ** 0.5, (v_new - v).norm() / v.numel() ** 0.5
        u, v = u_new, v_new
        if du < tol + tol * u.max() and dv < tol + tol * v.max():
            break
    return u, v


def _spectral(ours: SpectralNormed, ref: str, state: Mapping[str, Tensor], params: Mapping[str, Tensor],
              coeff: float, sn_update: bool, tol: float, used: set[str]) -> dict[str, Tensor]:
    w = params[ref + "weight"].double()
    u, v = state[ref + "u"].double().reshape(-1), state[ref + "v"].double().reshape(-1)
    conv = w.dim() == 4 and w.shape[-1] > 1
    w_mat = w if conv else w.reshape(w.shape[0], -1)
    size: tuple[int, ...] = ()
    if conv:
        size = tuple(int(s) for s in state[ref + "spatial_dims"])
        if size != tuple(ours.input_size):
            raise CheckpointError(f"{CODE}: {ref}spatial_dims is {size}, our layer is built for {ours.input_size}")
    if ref + "initialized" in state and not int(state[ref + "initialized"]):
        raise CheckpointError(f"{CODE}: {ref} was never initialised (its u, v are not power-iteration vectors)")
    if sn_update:
        u, v = _reference_update(w_mat, u, v, conv, size, tol)
    wv = F.conv2d(v.view(1, w.shape[1], *size), w, padding=w.shape[-1] // 2).reshape(-1) if conv else w_mat @ v
    sigma = float(u @ wv)
    w_bar = w / max(1.0, sigma / coeff)  # the reference's soft normalisation
    used.update(ref + k for k in ("weight", "bias", "u", "v", "scale", "spatial_dims", "initialized"))
    out = {"weight": w_bar.reshape(ours.weight.shape), "u": u.reshape(ours.u.shape), "v": v.reshape(ours.v.shape),
           "sigma_gap": torch.zeros(()), "sigma_hat": torch.zeros(())}
    if ours.bias is not None:
        out["bias"] = params[ref + "bias"]
    return out


def _our_units(model: ResFlowModel) -> list[tuple[str, Any]]:
    out = []
    for s, level in enumerate(model.levels):
        for j, layer in enumerate(level.layers):
            if isinstance(layer, (FlooredActNorm, ResidualBlock)):
                out.append((f"levels.{s}.layers.{j}.", layer))
    return out


@register_reference("resflow", "rtqichen/residual-flows", read=lambda path: read_checkpoint(path))
def load(source: Mapping[str, Any], config: Any = None, weights: str = "auto", sn_update: bool = True,
         coeff_slack: float = 1e-8) -> ResFlowModel:
    """Our :class:`ResFlowModel` with the weights of a Residual Flows checkpoint or state dict (module
    docstring). ``config``: our config (dict or :class:`ResFlowConfig`; default inferred from the keys and
    ``args``); ``weights``: ``"ema"``, ``"train"`` or ``"auto"`` (EMA when present)."""
    state = source.get("state_dict", source) if isinstance(source, Mapping) else source
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{CODE}: expected a state dict or a train_img.py checkpoint, got {type(source).__name__}")
    args = source.get("args") if isinstance(source, Mapping) else None
    ema = source.get("ema") if isinstance(source, Mapping) else None
    shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else getattr(ema, "shadow_params", None)
    if weights not in ("auto", "ema", "train"):
        raise CheckpointError(f"weights must be 'auto', 'ema' or 'train', got {weights!r}")
    if weights == "ema" and not shadow:
        raise CheckpointError(f"{CODE}: weights='ema' but the checkpoint has no ema.shadow_params")
    params = {**state, **(shadow if shadow and weights != "train" else {})}
    cfg = infer_config(state, args) if config is None else (
        config if isinstance(config, ResFlowConfig) else ResFlowConfig.from_dict(config))
    coeff = cfg.coeff
    model = ResFlowModel(ResFlowConfig.from_dict({**cfg.to_dict(), "coeff": coeff * (1 + coeff_slack)})).double()
    theirs, ours = _units(state), _our_units(model)
    kinds = [("fc" if isinstance(m.g.net[-1], SpectralLinear) else "conv") if isinstance(m, ResidualBlock)
             else ("actnorm1d" if m.flat else "actnorm2d") for _, m in ours]
    if [u[0] for u in theirs] != kinds:
        raise CheckpointError(f"{CODE}: the checkpoint's layers {[u[0] for u in theirs]} do not match this "
                              f"configuration's {kinds}; pass the matching config")
    tol = float(_arg(args, "sn_tol", 1e-3))
    mapped: dict[str, Tensor] = {}
    used: set[str] = set()
    for (prefix, layer), (kind, ref, mods) in zip(ours, theirs):
        if kind.startswith("actnorm"):
            for a, b in (("weight", "log_scale"), ("bias", "bias")):
                mapped[prefix + b] = params[ref + a].reshape(getattr(layer, b).shape)
            if not int(state[ref + "initialized"]):
                raise CheckpointError(f"{CODE}: ActNorm {ref} was never initialised")
            mapped[prefix + "initialized"] = state[ref + "initialized"].reshape(())
            used.update(ref + k for k in ("weight", "bias", "initialized"))
            continue
        mine = [(f"{prefix}g.net.{i}.", m) for i, m in enumerate(layer.g.net) if any(True for _ in m.parameters())]
        refs = [p for _, p in sorted(mods.items()) if any(k.startswith(p) for k in state)]
        if len(mine) != len(refs):
            raise CheckpointError(f"{CODE}: block {ref} has {len(refs)} parametrised modules, ours {len(mine)}")
        for (mp, m), rp in zip(mine, refs):
            if isinstance(m, LipSwish):
                mapped[mp + "beta_raw"] = params[rp + "beta"].reshape(1)
                used.add(rp + "beta")
            elif isinstance(m, (SpectralConv2d, SpectralLinear)):
                mapped.update({mp + k: t for k, t in _spectral(m, rp, state, params, coeff, sn_update, tol, used).items()})
            else:
                raise CheckpointError(f"{CODE}: cannot map {rp} onto our {type(m).__name__}")
        used.update(ref + k for k in ("geom_p", "lamb"))
    check_all_used(CODE, state, used, [k for k in state if k.rsplit(".", 1)[-1] in UNUSED])
    assign(model, mapped, CODE)
    refresh_spectral_norms(model, max_iter=200, tol=1e-13)
    shrink = [max(1.0, (float(m.sigma_hat) + float(m.sigma_gap)) / m.coeff) for m in model.modules()
              if isinstance(m, SpectralNormed)]
    model.reference_report = {"coeff": coeff, "coeff_used": coeff * (1 + coeff_slack),
                              "extra_shrink": max(shrink, default=1.0), "weights": "ema" if shadow and
                              weights != "train" else "train"}
    model.eval()
    return model


def from_reference_space(x: Tensor) -> Tensor:
    """The reference's data space (dequantised images ``x ∈ [0, 1]``) → our model space ``x − 1/2`` (our
    :class:`LogitTransform` refuses inputs outside it; inverses of arbitrary latents may leave it)."""
    return x - 0.5


__all__ = ["from_reference_space", "infer_config", "load", "read_checkpoint"]
