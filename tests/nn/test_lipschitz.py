"""Spectral normalisation with a certified bound: power iteration is a lower estimate, the circular-conv
bound an upper one, the layer's norm never exceeds its target (also after 100× weights), LipSwish ≤ 1."""
import pytest
import torch

from attnflow_core.core.errors import FlowError
from attnflow_core.diagnostics.lipschitz import conv_matrix
from attnflow_core.nn.lipschitz import (
    LipSwish,
    SpectralConv2d,
    SpectralLinear,
    SpectralRefresh,
    lipswish_max_slope,
)
from attnflow_core.nn.spectral import conv_norm_upper_bound


def _exact_norm(weight, size, padding):
    """The operator 2-norm of the zero-padded conv, from its dense matrix (the independent reference)."""
    return float(torch.linalg.matrix_norm(conv_matrix(weight.detach().cpu(), size, padding), ord=2))


def test_lipswish_slope_is_below_one_for_every_beta():
    assert 0.9998 < lipswish_max_slope() < 1.0  # max_t |d/dt t·sigmoid(t)| = 1.09984… < 1.1
    act = LipSwish().double()
    z = torch.linspace(-60, 60, 20001, dtype=torch.float64, requires_grad=True)
    for beta_raw in (-8.0, 0.5, 8.0):
        with torch.no_grad():
            act.beta_raw.fill_(beta_raw)
        (slope,) = torch.autograd.grad(act(z).sum(), z)
        assert slope.abs().max() < 1.0


@pytest.mark.parametrize("cin,cout,k,size", [(2, 5, 3, (4, 4)), (5, 2, 3, (3, 5)), (3, 3, 5, (2, 6)), (4, 3, 1, (3, 3))])
def test_estimate_exact_and_certified_norms_are_ordered(cin, cout, k, size, device):
    torch.manual_seed(0)
    conv = SpectralConv2d(cin, cout, k, size, coeff=0.9).to(device, torch.float64)
    exact = _exact_norm(conv.weight, size, k // 2)
    conv.refresh(max_iter=2000, tol=1e-10)
    cert = conv.certified_norm()
    assert float(conv.sigma_hat) <= exact * (1 + 1e-9) <= cert * (1 + 1e-9)
    assert abs(float(conv.sigma_hat) - exact) < 1e-3 * exact  # power iteration converged to the true norm
    used = _exact_norm(conv.normalized_weight(), size, k // 2)
    assert used <= 0.9 * (1 + 1e-9) and conv.lipschitz_bound() <= 0.9 * (1 + 1e-8)


def test_a_single_power_iteration_underestimates_but_the_layer_stays_below_target():
    torch.manual_seed(1)
    conv = SpectralConv2d(3, 6, 3, (5, 5), coeff=0.5).double()
    conv.refresh(max_iter=1)  # a deliberately poor estimate
    exact = _exact_norm(conv.weight, (5, 5), 1)
    assert float(conv.sigma_hat) < exact * (1 - 1e-3)  # the public code would normalise too little here
    used = _exact_norm(conv.normalized_weight(), (5, 5), 1)
    assert used <= 0.5 * (1 + 1e-9)


def test_weights_scaled_100x_are_renormalised_at_the_next_forward(device):
    torch.manual_seed(2)
    conv = SpectralConv2d(2, 4, 3, (4, 4), coeff=0.98).to(device, torch.float64)
    lin = SpectralLinear(6, 3, coeff=0.98).to(device, torch.float64)
    conv(torch.randn(1, 2, 4, 4, dtype=torch.float64).to(device))
    with torch.no_grad():
        conv.weight.mul_(100.0)
        lin.weight.mul_(100.0)
    assert conv.is_stale() and lin.is_stale()
    conv(torch.randn(1, 2, 4, 4, dtype=torch.float64).to(device))
    lin(torch.randn(1, 6, dtype=torch.float64).to(device))
    assert not conv.is_stale()
    assert _exact_norm(conv.normalized_weight().detach(), (4, 4), 1) <= 0.98 * (1 + 1e-9)
    assert float(torch.linalg.matrix_norm(lin.normalized_weight().detach(), ord=2)) <= 0.98 * (1 + 1e-9)


def test_bound_for_the_declared_size_covers_smaller_inputs_and_larger_ones_are_refused():
    torch.manual_seed(3)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    big = conv_norm_upper_bound(w, (6, 6), (1, 1))
    for size in [(1, 1), (2, 5), (6, 6)]:
        assert _exact_norm(w, size, 1) <= big
    conv = SpectralConv2d(2, 3, 3, (6, 6))
    conv(torch.randn(1, 2, 4, 6))  # smaller: fine
    with pytest.raises(FlowError, match="up to 6×6"):
        conv(torch.randn(1, 2, 7, 6))
    with pytest.raises(FlowError, match="needs input_size"):
        SpectralConv2d(2, 3, 3)


def test_certificate_is_an_upper_bound_on_random_kernels():
    g = torch.Generator().manual_seed(4)
    for _ in range(40):
        h, w = (int(v) for v in torch.randint(1, 7, (2,), generator=g))
        k = int(torch.tensor([1, 3, 5])[torch.randint(0, 3, (1,), generator=g)])
        cin, cout = (int(v) for v in torch.randint(1, 5, (2,), generator=g))
        wt = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)
        exact = _exact_norm(wt, (h, w), k // 2)
        assert exact <= conv_norm_upper_bound(wt, (h, w), (k // 2, k // 2))


def test_state_survives_save_load_and_the_hook_refreshes(device):
    torch.manual_seed(5)
    conv = SpectralConv2d(2, 3, 3, (4, 4)).to(device)
    x = torch.randn(2, 2, 4, 4).to(device)
    y = conv(x)
    fresh = SpectralConv2d(2, 3, 3, (4, 4)).to(device)
    fresh.load_state_dict(conv.state_dict())
    assert not fresh.is_stale()
    torch.testing.assert_close(fresh(x), y, rtol=0, atol=0)
    opt = torch.optim.SGD(conv.parameters(), lr=1.0)
    conv(x).square().sum().backward()
    opt.step()
    assert conv.is_stale()
    SpectralRefresh()(1, conv, opt)
    assert not conv.is_stale() and conv.lipschitz_bound() <= 0.98 * (1 + 1e-6)  # float32 rounding of W̄


@pytest.mark.parametrize("make", [lambda: SpectralLinear(8, 8, coeff=0.9), lambda: SpectralConv2d(3, 4, 3, (5, 5), coeff=0.9)],
                         ids=["linear", "conv3x3"])
def test_a_state_saved_before_its_refresh_is_not_trusted_after_loading(make):
    torch.manual_seed(2)
    layer = make()
    x = torch.randn(2, 8) if isinstance(layer, SpectralLinear) else torch.randn(2, 3, 5, 5)
    layer(x)  # refreshed at the initial weights
    with torch.no_grad():
        layer.weight.mul_(6.0).add_(torch.randn_like(layer.weight))  # an optimiser step, no refresh yet
    state = layer.state_dict()  # u, v, δ still belong to the old weights
    fresh = make()
    fresh.load_state_dict(state)
    assert fresh.is_stale()
    bound = fresh.lipschitz_bound()  # refreshes first
    w = fresh.normalized_weight()
    w = w.detach()
    exact = (float(torch.linalg.matrix_norm(w, ord=2)) if w.dim() == 2
             else _exact_norm(w.double(), (5, 5), 1))
    assert exact <= bound <= 0.9 * (1 + 1e-6)


def test_a_fresh_state_is_kept_bit_exact_after_loading(device):
    torch.manual_seed(3)
    conv = SpectralConv2d(2, 3, 3, (4, 4), coeff=0.9).to(device)
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    x = torch.randn(2, 2, 4, 4).to(device)
    conv(x).square().sum().backward()
    opt.step()
    SpectralRefresh()(1, conv, opt)
    fresh = SpectralConv2d(2, 3, 3, (4, 4), coeff=0.9).to(device)
    fresh.load_state_dict(conv.state_dict())
    assert not fresh.is_stale()  # no extra power iteration: a resumed run continues exactly
    torch.testing.assert_close(fresh(x), conv(x), rtol=0, atol=0)
    assert torch.equal(fresh.u, conv.u) and torch.equal(fresh.v, conv.v)
