"""Residual blocks: fixed-point inverses to 1e-8 in float64 (also with 100× weights), a clear error when
the iteration cannot converge, and the element-wise layers of the contractive models."""
import pytest
import torch
from torch import nn

from attnflow_core.core.errors import ConvergenceError
from attnflow_core.flows.residual import ResidualBlock
from attnflow_core.nn.lipschitz_nets import LipschitzConvNet, LipschitzFCNet


@pytest.mark.parametrize("make", [
    lambda: LipschitzConvNet(3, 16, (6, 6)),
    lambda: LipschitzConvNet(3, 16, (6, 6), coeff=0.9, activation="elu", preact=False),
    lambda: LipschitzFCNet((3, 6, 6), 32),
])
def test_inverse_round_trip_below_1e8_in_float64_even_with_weights_scaled_100x(make, device):
    torch.manual_seed(0)
    block = ResidualBlock(make()).to(device, torch.float64).eval()
    x = 3 * torch.randn(4, 3, 6, 6, dtype=torch.float64).to(device)
    for scale in (1.0, 100.0):
        with torch.no_grad():
            for name, p in block.named_parameters():
                if "weight" in name:
                    p.mul_(scale)
            y, _ = block(x)
            xr = block.inverse(y)
        assert float((xr - x).abs().max()) <= 1e-8, block.last_inverse
        assert block.lipschitz_bound() <= 0.98 ** 3 * (1 + 1e-8)


class Expanding(nn.Module):
    channels = 2

    def forward(self, x):
        return 1.5 * torch.tanh(x) + 1.2 * x


def test_non_contractive_branch_raises_convergence_error_naming_the_block():
    block = ResidualBlock(Expanding(), name="scale 2 block 7", max_iter=50)
    with pytest.raises(ConvergenceError, match="scale 2 block 7"):
        block.inverse(torch.randn(1, 2, 3, 3))
    assert block.lipschitz_bound() == float("inf")


def test_float32_inverse_meets_its_stated_tolerance(device):
    torch.manual_seed(1)
    block = ResidualBlock(LipschitzConvNet(2, 8, (5, 5))).to(device).eval()
    x = 5 * torch.randn(3, 2, 5, 5).to(device)
    with torch.no_grad():
        xr = block.inverse(block(x)[0])
    assert float((xr - x).abs().max()) / float(x.abs().max()) < block.inverse_tol
