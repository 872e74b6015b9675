"""Reusable contract checks for flow layers (and the helpers tests need), importable by any family.

``check_layer(example)`` runs every check of the layer contract on a :class:`LayerExample`:

1. **round trip** -- ``inverse(forward(x)) == x`` (float64: 1e-10 relative; float32: 1e-5; layers with an
   iterative inverse: the tolerance they state as ``inverse_tol``);
2. **log-det** -- exact layers: per-sample ``slogdet`` of the float64 autograd Jacobian (rtol 1e-6);
   layers with an estimated log-det: the mean of many seeded estimates (``contract_draws`` of the layer,
   default 2000) within 4 standard errors of it;
3. **cond matters** -- for a conditional layer, changing ``cond`` changes the output;
4. **gradients** -- every parameter gets a non-zero gradient from ``y`` and the log-det;
5. **save/load** -- a freshly built layer that loads the state dict computes the same output;
6. **eval == train** -- after data-dependent initialisation, train and eval mode agree (for an estimated
   log-det only the output: its estimator may differ by mode, e.g. more exact terms in evaluation).

Zero-initialised parameters are perturbed first (:func:`perturb_`), so no check passes trivially at an
identity map.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .core.layer import FlowLayer, LayerExample, registered_layers

# one tiny model of every family, for tests that check what the engine owns (entry checks, host reads, sampling)
TINY_FAMILIES: dict[str, dict] = {
    "glow": dict(family="multiscale", backbone="glow", image_shape=(3, 8, 8), levels=2, steps=2, hidden=8),
    "marflow": dict(family="multiscale", backbone="marflow", image_shape=(3, 8, 8), levels=2, steps=1, hidden=8,
                    prior_hidden=4, prior_layers=1),
    "srflow": dict(family="srflow", image_shape=(3, 16, 16), levels=2, steps=1, hidden=8, nf=4, nb=2, gc=4),
    "fullglow": dict(family="fullglow", image_shape=(1, 20, 20), label_channels=3, levels=2, steps=1, hidden=8,
                     cond_hidden=4),
    # the series log-det: the roulette's draw of the series length reads a CPU tensor (not a device sync)
    "resflow": dict(family="resflow", image_shape=(1, 4, 4), scales=(1, 1), hidden=8, fc_blocks=1, fc_hidden=8,
                    logdet=dict(method="series")),
}


def tiny_cond(model: nn.Module, n: int = 2, device: str | torch.device | None = None,
              generator: torch.Generator | None = None) -> Tensor | None:
    """A random uint8 condition of the right shape for a conditional family (LR image, label map), else None."""
    if model.config.family == "srflow":
        shape = model.config.lr_shape
    elif model.config.family == "fullglow":
        shape = model.label_shape
    else:
        return None
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, device=device, generator=generator)


def perturb_(module: nn.Module, scale: float = 0.1, seed: int = 0) -> None:
    """Add seeded noise to every parameter, so zero-initialised layers are not at their trivial identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p))


def prepare_model(model: nn.Module, x: Tensor, cond: Tensor | None = None, scale: float = 0.05,
                  seed: int = 0) -> nn.Module:
    """A whole model ready for the exactness checks: data-dependent initialisation on ``x`` (training
    mode), every parameter perturbed (so zero-initialised layers are not trivial), evaluation mode."""
    model.train()
    model.log_prob(x, cond)
    perturb_(model, scale, seed)
    return model.eval()


def jacobian_logdets(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """log|det J| per sample of ``fn`` (which maps a (1, ...) sample to an output of the same size)."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i: i + 1]
        jac = torch.autograd.functional.jacobian(lambda t: fn(t).reshape(-1), xi, vectorize=True)
        jac = jac.reshape(jac.shape[0], -1)
        if jac.shape[0] != jac.shape[1]:
            raise AssertionError(f"the map must be square, its Jacobian is {tuple(jac.shape)}")
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


def all_layer_examples(package: str = "attnflow_core") -> dict[str, tuple[type[FlowLayer], LayerExample]]:
    """``{"<Class>:<example>": (class, example)}`` over every registered layer of ``package``."""
    import importlib

    importlib.import_module(package)
    out = {}
    for cls in registered_layers(package).values():
        for name, ex in cls.examples().items():
            out[f"{cls.__name__}:{name}"] = (cls, ex)
    return out


def layers_without_examples(package: str = "attnflow_core") -> list[str]:
    """Registered concrete layers that neither provide examples nor state why they are exempt."""
    import importlib

    importlib.import_module(package)
    return sorted(k for k, c in registered_layers(package).items() if not c.examples() and not c.contract_exempt)


def make_inputs(example: LayerExample, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                seed: int = 0) -> tuple[Tensor, Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    x = example.input_scale * torch.randn(example.shape, generator=g, dtype=torch.float64)
    c = None if example.cond_shape is None else torch.randn(example.cond_shape, generator=g, dtype=torch.float64)
    return x.to(device, dtype), (None if c is None else c.to(device, dtype))


def prepare(example: LayerExample, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
            scale: float = 0.1, seed: int = 0) -> tuple[FlowLayer, Tensor, Tensor | None]:
    """Build the layer, run its data-dependent initialisation on the example input, perturb, eval mode."""
    torch.manual_seed(seed)
    layer = example.build().to(device, dtype)
    x, c = make_inputs(example, dtype, device, seed)
    layer.train()
    with torch.no_grad():
        layer(x, c)
    perturb_(layer, scale, seed)
    layer.eval()
    return layer, x, c


def check_round_trip(layer: FlowLayer, x: Tensor, c: Tensor | None) -> float:
    with torch.no_grad():
        y, logdet = layer(x, c)
        xr = layer.inverse(y, c)
    assert logdet.shape == (x.shape[0],), f"log-det must have shape (B,), got {tuple(logdet.shape)}"
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all(), "non-finite output"
    err = float((xr - x).abs().max()) / max(1.0, float(x.abs().max()))
    tol = getattr(layer, "inverse_tol", None) if not layer.exact_inverse else None
    tol = tol or (1e-10 if x.dtype == torch.float64 else 1e-5)
    assert err < tol, f"round trip error {err:.3g} > {tol:g}"
    return err


def check_logdet(layer: FlowLayer, x: Tensor, c: Tensor | None, draws: int = 2000) -> None:
    """Exact layers: equal to slogdet of the autograd Jacobian; estimated: unbiased within 4 SE."""
    x = x.double()
    c = None if c is None else c.double()
    layer = layer.double()
    expected = jacobian_logdets(lambda t: layer(t, None if c is None else c[:1])[0], x[:1])
    if layer.exact_logdet:
        _, logdet = layer(x, c)
        torch.testing.assert_close(logdet[:1], expected, rtol=1e-6, atol=1e-8)
        full = jacobian_logdets(lambda t: layer(t, None if c is None else c[1:2])[0], x[1:2]) if x.shape[0] > 1 else None
        if full is not None:
            torch.testing.assert_close(logdet[1:2], full, rtol=1e-6, atol=1e-8)
        return
    draws = int(getattr(layer, "contract_draws", draws))
    with torch.no_grad():
        est = torch.stack([_seeded(lambda: layer(x[:1], None if c is None else c[:1])[1][0], s) for s in range(draws)])
    se = float(est.std() / draws ** 0.5)
    assert abs(float(est.mean()) - float(expected[0])) < 4 * se + 1e-8, \
        f"estimated log-det mean {float(est.mean()):.6g} ± {se:.2g} vs exact {float(expected[0]):.6g}"


def _seeded(fn: Callable[[], Tensor], seed: int) -> Tensor:
    torch.manual_seed(seed)
    return fn()


def check_cond_matters(layer: FlowLayer, x: Tensor, c: Tensor | None) -> None:
    if c is None:
        return
    with torch.no_grad():
        y1, _ = layer(x, c)
        y2, _ = layer(x, c + 1.0)
    assert float((y1 - y2).abs().max()) > 1e-6, "changing cond does not change the output"


def check_grads(layer: FlowLayer, x: Tensor, c: Tensor | None, dead_ok: tuple[str, ...] = ()) -> None:
    """Every parameter but those named in ``dead_ok`` gets a non-zero gradient (and those do not)."""
    if not any(p.requires_grad for p in layer.parameters()):
        return
    layer.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    y, logdet = layer(x, c)
    (y.square().mean() + logdet.mean()).backward()
    dead = [n for n, p in layer.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert sorted(dead) == sorted(dead_ok), f"parameters without gradient: {dead} (declared dead: {list(dead_ok)})"
    layer.zero_grad(set_to_none=True)


def check_save_load(example: LayerExample, layer: FlowLayer, x: Tensor, c: Tensor | None) -> None:
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(12345)  # a different random init
    fresh = example.build().to(x.device, x.dtype)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        y1, l1 = layer(x, c)
        torch.manual_seed(0)
        y2, l2 = fresh(x, c)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    torch.testing.assert_close(l1, l2, rtol=0, atol=0)
    fresh.train()  # a loaded layer must not re-run its data-dependent initialisation
    with torch.no_grad():
        torch.manual_seed(0)
        fresh(0.5 * x, c)  # other statistics (and inside every layer's domain, e.g. the logit's)
    fresh.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        y3, _ = fresh(x, c)
    torch.testing.assert_close(y1, y3, rtol=0, atol=0, msg="the layer re-initialised itself after load_state_dict")


def check_eval_equals_train(layer: FlowLayer, x: Tensor, c: Tensor | None) -> None:
    with torch.no_grad():
        layer.eval()
        torch.manual_seed(0)
        ye, le = layer(x, c)
        layer.train()
        torch.manual_seed(0)
        yt, lt = layer(x, c)
        layer.eval()
    torch.testing.assert_close(ye, yt)
    if layer.exact_logdet:
        torch.testing.assert_close(le, lt)


def check_layer(example: LayerExample, dtype: torch.dtype = torch.float64,
                device: str | torch.device = "cpu") -> None:
    """Every contract check on one example (float64 checks always run in float64)."""
    # float32 gets a milder perturbation: a strongly perturbed coupling (scale ~0.1, shift ~8) is
    # ill-conditioned and amplifies float32 rounding itself; float64 covers the math
    layer, x, c = prepare(example, dtype, device, scale=0.1 if dtype == torch.float64 else 0.03)
    check_round_trip(layer, x, c)
    check_eval_equals_train(layer, x, c)
    check_cond_matters(layer, x, c)
    check_grads(layer, x, c, example.dead_params)
    check_save_load(example, layer, x, c)
    layer64, x64, c64 = prepare(example, torch.float64, device)
    check_logdet(layer64, x64, c64)
