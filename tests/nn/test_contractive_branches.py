"""Lip(g) < 1 measured for every residual branch we ship -- plain Residual Flow / i-ResNet / FC branches,
ACF's L2 and dot-product attention inside g (global and windowed), Zha's corrected iDP/iCon -- at random, constant and
adversarial inputs and with all weights scaled up 100×; and the published forms that are not contractive."""
import math

import pytest
import torch

from attnflow_core.diagnostics.lipschitz import find_normaliser_root, jacobian_norm, lipschitz_probe
from attnflow_core.nn.acf import ACFPublishedDotAttention, L2SelfAttention, LipschitzDotAttention
from attnflow_core.nn.lipschitz_nets import LipschitzConvNet, LipschitzFCNet
from attnflow_core.nn.zha import ZhaAttention

SHAPE = (2, 3, 4, 4)
BRANCHES = {
    "resflow": lambda: LipschitzConvNet(3, 8, (4, 4)),
    "iresnet_elu": lambda: LipschitzConvNet(3, 8, (4, 4), coeff=0.9, activation="elu"),
    "fc": lambda: LipschitzFCNet((3, 4, 4), 16),
    "acf_l2": lambda: LipschitzConvNet(3, 8, (4, 4), attention=L2SelfAttention(8, heads=2)),
    "acf_dot": lambda: LipschitzConvNet(3, 8, (4, 4), attention=LipschitzDotAttention(8, qk_channels=2)),
    "acf_l2_windowed": lambda: LipschitzConvNet(3, 8, (4, 4), attention=L2SelfAttention(8, heads=2, window=2)),
    "zha_idp_corrected": lambda: ZhaAttention(3, "idp", "corrected"),
    "zha_icon_corrected": lambda: ZhaAttention(3, "icon", "corrected"),
}


@pytest.mark.parametrize("name", sorted(BRANCHES))
def test_measured_lipschitz_stays_below_the_certificate_below_one(name):
    torch.manual_seed(0)
    g = BRANCHES[name]().double()
    for weight_scale in (1.0, 100.0):
        with torch.no_grad():
            for p in g.parameters():
                if p.dim() > 1:
                    p.mul_(weight_scale)
            if hasattr(g, "net"):  # attention gates at their most open
                for m in g.net:
                    if hasattr(m, "gate"):
                        m.gate.fill_(8.0)
        g(torch.zeros(SHAPE, dtype=torch.float64))  # refresh after the in-place edit
        cert = g.lipschitz_bound()
        assert cert < 1.0
        probe = lipschitz_probe(g, SHAPE, scales=(1.0, 100.0), adversarial_steps=5, iters=12)
        assert probe["max"] <= cert * (1 + 1e-6), (weight_scale, probe, cert)


@pytest.mark.parametrize("kind", ["idp", "icon"])
def test_published_zha_attention_is_not_contractive_somewhere(kind):
    """Reproduces the flaw: along a line the published global ELU normaliser crosses zero; next to the root
    the local Lipschitz constant of F is far above 1 (so y = x + F(x) is not invertible by fixed point)."""
    found = []
    for seed in range(30):
        torch.manual_seed(seed)
        att = ZhaAttention(12, kind, "published").double()
        x0 = torch.randn(1, 12, 4, 4, dtype=torch.float64)
        d = torch.randn(1, 12, 4, 4, dtype=torch.float64)
        t = find_normaliser_root(att, x0, d, t_max=15.0, grid=150)
        if t is not None:
            slope = float(jacobian_norm(att, x0 + (t + 1e-3) * d, iters=30)[0])
            found.append(slope)
            if slope > 10:
                break
    assert found and max(found) > 10.0, found
    assert math.isinf(att.lipschitz_bound()) and att.claimed_bound == pytest.approx(0.54)


def test_published_main_repo_normalisation_is_not_contractive_at_gaussian_inputs():
    torch.manual_seed(0)
    att = ZhaAttention(12, "idp", "published", normalise="column").double()
    slopes = jacobian_norm(att, torch.randn(8, 12, 4, 4, dtype=torch.float64), iters=30)
    assert float(slopes.max()) > 1.0


def test_acf_published_dot_attention_has_no_bound():
    """ACF's released form inside g: with a trained gate (γ = 1 here) and large inputs the branch is not contractive."""
    torch.manual_seed(0)
    g = LipschitzConvNet(3, 16, (4, 4), attention=ACFPublishedDotAttention(16, gamma=1.0)).double()
    x = torch.randn(SHAPE, dtype=torch.float64)
    small, big = float(jacobian_norm(g, 0.1 * x).max()), float(jacobian_norm(g, 100.0 * x).max())
    with torch.no_grad():
        g.net[-2].v.weight.mul_(100.0)  # V is never normalised in ACF's code
    bigger = float(jacobian_norm(g, 100.0 * x).max())
    assert bigger > 1.0 and bigger > small, (small, big, bigger)
