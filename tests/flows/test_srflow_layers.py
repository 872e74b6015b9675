"""SRFlow's layers beyond the shared contract: the exact transform (shift first, sigmoid(h+2)+eps), its
bounds under extreme weights, the initial scale, and the unfactored 1×1 conv."""
import math

import pytest
import torch
from torch import nn

from attnflow_core.core import FlowError
from attnflow_core.flows import AffineInjector, CondAffineCoupling, InvConv1x1Full
from attnflow_core.testing import jacobian_logdets


class Fixed(nn.Module):
    """A stand-in network with a fixed output: even channels (shift) = 1, odd channels (raw scale) = h."""

    def __init__(self, cout, h):
        super().__init__()
        self.cout, self.h = cout, h

    def forward(self, x):
        out = torch.ones(x.shape[0], self.cout, *x.shape[2:], dtype=x.dtype)
        out[:, 1::2] = self.h
        return out


@pytest.mark.parametrize("h", [0.0, -3.0, 5.0])
def test_injector_adds_the_shift_before_scaling(h, device):
    layer = AffineInjector(4, 2, net=lambda cin, cout: Fixed(cout, h)).to(device, torch.float64)
    x, c = (torch.randn(2, 4, 3, 3, dtype=torch.float64).to(device), torch.randn(2, 2, 3, 3, dtype=torch.float64).to(device))
    y, logdet = layer(x, c)
    s = 1 / (1 + math.exp(-(h + 2))) + 1e-4
    torch.testing.assert_close(y, (x + 1) * s)
    torch.testing.assert_close(logdet, torch.full((2,), 4 * 9 * math.log(s), dtype=torch.float64, device=device))


def test_coupling_transforms_the_second_half_from_the_first_and_the_features(device):
    layer = CondAffineCoupling(5, 2, net=lambda cin, cout: Fixed(cout, 1.0)).to(device, torch.float64)
    x, c = (torch.randn(2, 5, 3, 3, dtype=torch.float64).to(device), torch.randn(2, 2, 3, 3, dtype=torch.float64).to(device))
    y, logdet = layer(x, c)
    s = 1 / (1 + math.exp(-3.0)) + 1e-4
    torch.testing.assert_close(y[:, :2], x[:, :2])  # x1 = the first ⌊C/2⌋ channels pass unchanged
    torch.testing.assert_close(y[:, 2:], (x[:, 2:] + 1) * s)
    torch.testing.assert_close(logdet, torch.full((2,), 3 * 9 * math.log(s), dtype=torch.float64, device=device))
    assert layer.net.cout == 2 * 3 and CondAffineCoupling(5, 2, hidden=4).net.net[0].conv.in_channels == 2 + 2


def test_at_initialisation_every_affine_layer_scales_by_sigmoid_2(device, dtype):
    # SRFlow's reference code: not the identity at initialisation; log-scale ≈ −0.1269 per scaled element
    layer = AffineInjector(4, 3, hidden=8).to(device, dtype)
    x, c = torch.randn(2, 4, 3, 3).to(device, dtype), torch.randn(2, 3, 3, 3).to(device, dtype)
    y, logdet = layer(x, c)
    torch.testing.assert_close(y, x * (torch.sigmoid(torch.tensor(2.0, dtype=dtype)) + 1e-4))
    torch.testing.assert_close(logdet / (4 * 9), torch.full((2,), -0.12681, dtype=dtype, device=device), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [AffineInjector, CondAffineCoupling])
def test_scale_stays_in_its_bounds_under_extreme_weights(cls, device):
    torch.manual_seed(0)
    layer = cls(4, 3, hidden=8).to(device, torch.float64)
    x, c = (torch.randn(2, 4, 4, 4, dtype=torch.float64).to(device), torch.randn(2, 3, 4, 4, dtype=torch.float64).to(device))
    layer.train()
    layer(x, c)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(100.0).add_(0.5)
    layer.eval()
    with torch.no_grad():
        y, logdet = layer(x, c)
        n = 4 * 16 if cls is AffineInjector else 2 * 16
        assert torch.isfinite(y).all() and (logdet <= n * math.log(1 + 1e-4) + 1e-9).all()
        assert (logdet >= n * math.log(1e-4) - 1e-9).all()
        xr = layer.inverse(y, c)
    assert float((xr - x).abs().max()) < 1e-6 * max(1.0, float(y.abs().max()))
    expected = jacobian_logdets(lambda t: layer(t, c[:1])[0], x[:1])
    torch.testing.assert_close(logdet[:1], expected, rtol=1e-6, atol=1e-6)


def test_full_invconv_is_orthogonal_at_init_and_counts_c_squared(device, dtype):
    torch.manual_seed(0)
    layer = InvConv1x1Full(6).to(device, dtype)
    assert sum(p.numel() for p in layer.parameters()) == 36
    with torch.no_grad():
        _, logdet = layer(torch.randn(2, 6, 3, 3).to(device, dtype))
    assert float(logdet.abs().max()) < 1e-4
    with torch.no_grad():
        layer.weight.mul_(2.0)
    _, logdet = layer(torch.randn(2, 6, 3, 3).to(device, dtype))
    want = torch.full((2,), 9 * 6 * math.log(2.0), dtype=dtype, device=device)
    torch.testing.assert_close(logdet, want, rtol=1e-5, atol=1e-4)


def test_injector_needs_features():
    with pytest.raises(FlowError, match="conditioned on features"):
        AffineInjector(4, 0)
    with pytest.raises(FlowError, match="cond_channels=3 but got cond=None"):
        AffineInjector(4, 3)(torch.randn(1, 4, 2, 2))
    with pytest.raises(FlowError, match="cond must have shape"):
        CondAffineCoupling(4, 3)(torch.randn(1, 4, 2, 2), torch.randn(1, 2, 2, 2))
