"""The log-det estimators against the exact float64 log-det: the Russian roulette is unbiased (Poisson and
geometric, several n₀, S > 1, training and evaluation paths), the truncated series' bias stays within its
bound, and the Neumann-series gradient matches autograd of the exact log-det."""
import math

import pytest
import torch
from torch import nn

from attnflow_core.flows.logdet import (
    LogDetConfig,
    estimate_logdet,
    exact_logdet,
    series_weights,
    tail_prob,
    truncation_bound,
)
from attnflow_core.nn.lipschitz_nets import LipschitzFCNet
from attnflow_core.testing import jacobian_logdets

D = 4


class Linear(nn.Module):
    """g(x) = A x on (B, 1, 2, 2) tensors, with ‖A‖₂ = 0.6 (so log det(I + A) is known exactly). 0.6² < 1 − p for
    the geometric cases below: their roulette estimators have finite variance (Residual Flows' condition)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(D, D, generator=g, dtype=torch.float64)
        self.a = nn.Parameter(0.6 * a / torch.linalg.matrix_norm(a, ord=2))

    def forward(self, x):
        return (x.flatten(1) @ self.a.T).view_as(x)

    def exact(self) -> float:
        """log det(I + A), in float64."""
        return float(torch.linalg.slogdet(torch.eye(D, dtype=torch.float64, device=self.a.device) + self.a.detach()).logabsdet)


def _draws(g, x, cfg, training, calls):
    """Per-call mean estimates (the roulette N is shared inside a call, so calls are the independent units)."""
    out = []
    for s in range(calls):
        torch.manual_seed(s)
        with torch.no_grad():
            out.append(estimate_logdet(g, x, cfg, training)[1].mean())
    return torch.stack(out)


@pytest.mark.parametrize("cfg,training", [
    (dict(dist="poisson", lam=2.0, n_exact=2), True),
    (dict(dist="poisson", lam=1.5, n_exact=1, n_samples=3), True),
    (dict(dist="geometric", p=0.5, n_exact=1), True),
    (dict(dist="geometric", p=0.3, n_exact=0, n_samples=2, probe="rademacher"), True),
    (dict(dist="poisson", n_exact_eval=3), False),  # the evaluation path, with its own n_exact
])
def test_roulette_is_unbiased(cfg, training, device):
    g = Linear().to(device)
    x = torch.zeros(50, 1, 2, 2, dtype=torch.float64, device=device)
    exact = g.exact()
    est = _draws(g, x, LogDetConfig.from_dict(cfg), training, 200)  # 200 calls × 50 probes = 10^4 estimates
    se = float(est.std() / math.sqrt(len(est)))
    assert abs(float(est.mean()) - exact) < 3 * se, (float(est.mean()), exact, se)


def test_roulette_is_unbiased_for_a_nonlinear_branch(device):
    torch.manual_seed(0)
    g = LipschitzFCNet((1, 2, 2), 8, coeff=0.97).to(device, torch.float64)
    x = torch.randn(1, 1, 2, 2, dtype=torch.float64).to(device)
    exact = float(exact_logdet(g, x)[1])
    xs = x.expand(50, -1, -1, -1).contiguous()
    est = _draws(g, xs, LogDetConfig.from_dict(dict(n_exact=1, n_samples=2)), True, 200)
    se = float(est.std() / math.sqrt(len(est)))
    assert abs(float(est.mean()) - exact) < 3 * se


def test_exact_logdet_matches_slogdet_of_the_autograd_jacobian(device):
    torch.manual_seed(1)
    g = LipschitzFCNet((1, 2, 2), 8).to(device, torch.float64)
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64).to(device)
    _, ld = exact_logdet(g, x)
    torch.testing.assert_close(ld, jacobian_logdets(lambda t: t + g(t), x), rtol=1e-10, atol=1e-12)


def test_series_bias_shrinks_and_stays_within_the_truncation_bound():
    g = Linear()
    exact = g.exact()
    powers = [torch.linalg.matrix_power(g.a.detach(), k) for k in range(1, 12)]
    prev = math.inf
    for n in (1, 2, 4, 8):
        truncated = sum((-1) ** (k + 1) * float(powers[k - 1].trace()) / k for k in range(1, n + 1))
        bias = abs(truncated - exact)
        assert bias <= truncation_bound(0.6, D, n) and bias < prev
        prev = bias
        x = torch.zeros(2000, 1, 2, 2, dtype=torch.float64)
        torch.manual_seed(n)
        with torch.no_grad():
            est = estimate_logdet(g, x, LogDetConfig(method="series", n_terms=n), True)[1]
        assert abs(float(est.mean()) - truncated) < 4 * float(est.std()) / math.sqrt(len(est))


def test_evaluation_honours_its_own_exact_terms():
    cfg = LogDetConfig(n_exact=2, n_exact_eval=7)
    torch.manual_seed(0)
    w = series_weights(cfg, training=False)
    assert len(w) >= 7 and w[:7] == [1.0] * 7
    assert tail_prob(LogDetConfig(dist="geometric", p=0.25), 3) == pytest.approx(0.75 ** 2)
    assert tail_prob(LogDetConfig(dist="poisson", lam=2.0), 2) == pytest.approx(1 - 3 * math.exp(-2))


@pytest.mark.parametrize("dist", ["poisson", "geometric"])
def test_neumann_gradient_matches_autograd_of_the_exact_logdet(dist, device):
    torch.manual_seed(2)
    g = LipschitzFCNet((1, 2, 2), 6, coeff=0.95).to(device, torch.float64)
    x0 = torch.randn(1, 1, 2, 2, dtype=torch.float64).to(device)
    params = [p for p in g.parameters()]
    x = x0.clone().requires_grad_(True)
    _, ld = exact_logdet(g, x, create_graph=True)
    want = torch.cat([t.flatten() for t in torch.autograd.grad(ld.sum(), [x] + params, materialize_grads=True)])
    cfg = LogDetConfig(dist=dist, n_exact=1, n_samples=2)
    grads = []
    for s in range(150):
        torch.manual_seed(100 + s)
        xs = x0.expand(40, -1, -1, -1).clone().requires_grad_(True)
        _, est = estimate_logdet(g, xs, cfg, training=True)
        gx, *gp = torch.autograd.grad(est.mean(), [xs] + params, materialize_grads=True)
        grads.append(torch.cat([gx.sum(0).flatten()] + [t.flatten() for t in gp]))
    grads = torch.stack(grads)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(len(grads))
    z = ((mean - want).abs() / (se + 1e-12))
    assert float(z.max()) < 4.5, f"largest deviation {float(z.max()):.2f} standard errors"
    assert float(((mean - want).norm() / want.norm())) < 0.05


def test_neumann_value_is_the_estimate_not_the_surrogate():
    g = Linear()
    x = torch.zeros(4000, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)
    _, est = estimate_logdet(g, x, LogDetConfig(n_exact=6), training=True)
    exact = g.exact()
    est = est.detach()
    assert abs(float(est.mean()) - exact) < 4 * float(est.std()) / math.sqrt(4000)
