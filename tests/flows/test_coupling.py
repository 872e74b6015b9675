"""Couplings: network factories (default = stage-1 nets, same keys), conditional inputs, errors."""
import pytest
import torch
from torch import nn

from attnflow_core import AffineCoupling, FlowError, MixLogisticCoupling
from attnflow_core.nn import AffineNet


def test_default_factory_keeps_stage1_state_dict_keys():
    keys = set(AffineCoupling(4, hidden=8).state_dict())
    assert {"net.net.0.conv.weight", "net.net.0.norm.log_scale", "net.net.0.norm.bias", "net.net.0.norm.initialized",
            "net.net.4.conv.weight", "net.net.4.logs"} <= keys
    assert isinstance(AffineCoupling(4, hidden=8).net, AffineNet)
    assert "net.out.weight" in MixLogisticCoupling(4, hidden=8, components=2, blocks=1).state_dict()


def test_a_custom_network_factory_is_used():
    made = []

    def factory(cin, cout):
        made.append((cin, cout))
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        nn.init.zeros_(conv.weight)
        return conv

    layer = AffineCoupling(6, cond_channels=3, net=factory)
    assert made == [(3 + 3, 2 * 3)]
    x, c = torch.randn(2, 6, 4, 4), torch.randn(2, 3, 4, 4)
    y, ld = layer(x, c)
    torch.testing.assert_close(layer.inverse(y, c), x, atol=1e-5, rtol=0)


def test_coupling_needs_two_channels_and_its_cond():
    with pytest.raises(FlowError, match="at least 2 channels"):
        AffineCoupling(1)
    layer = AffineCoupling(4, hidden=8, cond_channels=2)
    with pytest.raises(FlowError, match="cond=None"):
        layer(torch.randn(1, 4, 4, 4))
    with pytest.raises(FlowError, match=r"cond must have shape \(1, 2, 4, 4\)"):
        layer(torch.randn(1, 4, 4, 4), torch.randn(1, 3, 4, 4))
