"""mARFlow's autoregressive prior: autoregressive over channels, sampling == teacher forcing (the ConvLSTM: tests/nn/test_convlstm.py)."""
import pytest
import torch

from attnflow_core import ARChannelPrior
from attnflow_core.testing import perturb_


def test_ar_prior_is_autoregressive_over_channels(device):
    prior = ARChannelPrior(5, context_channels=3, hidden=8, layers=2, kernel=3).to(device, torch.float64)
    perturb_(prior, 0.3)
    z = torch.randn(1, 5, 4, 4, dtype=torch.float64).to(device).requires_grad_()
    ctx = torch.randn(1, 3, 4, 4, dtype=torch.float64).to(device)
    mean, log_std = prior.params(z, ctx)
    for j in range(5):
        g, = torch.autograd.grad(mean[0, j].sum() + log_std[0, j].sum(), z, retain_graph=True)
        assert g[0, j:].abs().max() == 0, f"channel {j} sees channels >= {j}"
        if j > 0:
            assert g[0, :j].abs().max() > 0, f"channel {j} ignores its predecessors"


def test_ar_prior_sequential_sampling_matches_teacher_forcing(device):
    prior = ARChannelPrior(4, context_channels=2, hidden=8, layers=3, kernel=5, dilation=2).to(device, torch.float64)
    perturb_(prior, 0.3)
    ctx = torch.randn(2, 2, 6, 6, dtype=torch.float64).to(device)
    z = prior.sample((2, 4, 6, 6), ctx, temperature=0.0)  # the mean, step by step
    mean, _ = prior.params(z, ctx)
    torch.testing.assert_close(z, mean)


def test_priors_share_one_argument_order():
    import inspect

    from attnflow_core import LearnedGaussianPrior, SplitGaussianPrior, StandardNormal

    for cls in (ARChannelPrior, LearnedGaussianPrior, SplitGaussianPrior, StandardNormal):
        assert list(inspect.signature(cls.log_prob).parameters)[:4] == ["self", "z", "context", "cond"]
        assert list(inspect.signature(cls.sample).parameters)[:5] == ["self", "shape", "context", "cond", "temperature"]


def test_split_prior_needs_its_context():
    from attnflow_core import FlowError, SplitGaussianPrior

    with pytest.raises(FlowError, match="kept half"):
        SplitGaussianPrior(2, 2).log_prob(torch.zeros(1, 2, 4, 4))


def test_standard_normal_log_prob_and_temperature(device):
    from attnflow_core import StandardNormal

    p = StandardNormal().to(device, torch.float64)
    z = torch.randn(3, 2, 4, 4, dtype=torch.float64).to(device)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)
    torch.testing.assert_close(p.log_prob(z), expected)
    s = p.sample((4000, 1, 1, 1), temperature=0.5)
    assert s.dtype == torch.float64 and abs(float(s.std()) - 0.5) < 0.03
