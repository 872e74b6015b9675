"""Every layer: exact inverse, and log-det equal to slogdet of the autograd Jacobian (float64)."""
import pytest
import torch

from attnflow_core import (ActNorm, AffineCoupling, IMap, ITrans, InvConv1x1, MixLogisticCoupling,
                           Squeeze, FlowSequence)
from attnflow_core.masks import MASK_KINDS

from conftest import jacobian_logdets, perturb_

SHAPE = (2, 4, 4, 4)  # B, C, H, W


def _layers():
    cases = {
        "actnorm": lambda: ActNorm(4),
        "invconv": lambda: InvConv1x1(4),
        "squeeze": lambda: Squeeze(),
        "affine": lambda: AffineCoupling(4, hidden=8),
        "affine_odd": lambda: AffineCoupling(5, hidden=8),
        "mixlogistic": lambda: MixLogisticCoupling(4, hidden=8, components=3, blocks=1, dropout=0.0),
        "sequence": lambda: FlowSequence([ActNorm(4), InvConv1x1(4), AffineCoupling(4, hidden=8)]),
    }
    for m in MASK_KINDS:
        cases[f"imap_{m}"] = (lambda m=m: IMap(4, mask=m))
        cases[f"itrans_{m}"] = (lambda m=m: ITrans(4, heads=2, patches=4, mask=m))
    cases["imap_odd_channels"] = lambda: IMap(3, mask="checkerboard")
    cases["itrans_odd_channels"] = lambda: ITrans(3, heads=3, patches=4, mask="checkerboard")
    cases["itrans_9_patches"] = lambda: ITrans(4, heads=1, patches=9, mask="checkerboard")
    cases["itrans_odd_patch"] = lambda: ITrans(4, heads=2, patches=(4, 4), mask="checkerboard")  # 1×1 patches
    return cases


CASES = _layers()


def _input(name, dtype):
    c = 5 if name == "affine_odd" else 3 if name.endswith("odd_channels") else 4
    hw = 6 if name == "itrans_9_patches" else 4
    return torch.randn(SHAPE[0], c, hw, hw, dtype=dtype)


def _ready(name, dtype, scale=0.1):
    layer = CASES[name]().to(dtype)
    x = _input(name, dtype)
    layer.train()
    layer(x)  # data-dependent initialisation where there is one
    perturb_(layer, scale)
    layer.eval()
    return layer, x


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_inverse_round_trip(name, dtype, tol):
    # float32 gets a milder perturbation: a strongly perturbed coupling (scale ~0.1, shift ~8)
    # is ill-conditioned and amplifies float32 rounding itself; float64 covers the math.
    layer, x = _ready(name, dtype, 0.1 if dtype == torch.float64 else 0.03)
    with torch.no_grad():
        y, logdet = layer(x)
        xr = layer.inverse(y)
    assert logdet.shape == (x.shape[0],)
    assert torch.isfinite(logdet).all()
    assert (xr - x).abs().max().item() < tol * max(1.0, x.abs().max().item())


@pytest.mark.parametrize("name", sorted(CASES))
def test_logdet_matches_autograd_jacobian(name):
    layer, x = _ready(name, torch.float64)
    _, logdet = layer(x)
    expected = jacobian_logdets(lambda t: layer(t)[0], x)
    torch.testing.assert_close(logdet, expected, rtol=1e-6, atol=1e-8)
    # and the check is not trivial: the layer really changes volume, per sample
    if name != "squeeze":
        assert expected.abs().max() > 1e-3


def test_logdet_is_per_sample_not_batch_mean():
    layer, _ = _ready("imap_checkerboard", torch.float64)
    x = torch.randn(3, 4, 4, 4, dtype=torch.float64) * torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64).view(3, 1, 1, 1)
    _, logdet = layer(x)
    assert logdet.shape == (3,)
    assert len(set(logdet.tolist())) == 3


@pytest.mark.parametrize("cls", ["affine", "imap", "itrans", "mixlogistic"])
def test_conditional_layers(cls):
    dtype = torch.float64
    make = {
        "affine": lambda: AffineCoupling(4, hidden=8, cond_channels=2),
        "imap": lambda: IMap(4, cond_channels=2),
        "itrans": lambda: ITrans(4, heads=2, cond_channels=2),
        "mixlogistic": lambda: MixLogisticCoupling(4, hidden=8, components=2, blocks=1, dropout=0.0, cond_channels=2),
    }[cls]
    layer = make().to(dtype)
    x = torch.randn(2, 4, 4, 4, dtype=dtype)
    c = torch.randn(2, 2, 4, 4, dtype=dtype)
    layer.train()
    layer(x, c)
    perturb_(layer)
    layer.eval()
    y, logdet = layer(x, c)
    assert (layer.inverse(y, c) - x).abs().max() < 1e-10
    expected = jacobian_logdets(lambda t: layer(t, c[:1])[0], x[:1])
    torch.testing.assert_close(logdet[:1], expected, rtol=1e-6, atol=1e-8)
    # the condition matters
    y2, _ = layer(x, c + 1.0)
    assert (y2 - y).abs().max() > 1e-6
