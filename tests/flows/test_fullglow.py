"""Full-Glow's layers beyond the shared contract: per-sample log-dets (the reference's batch-mean bugs are
caught), data-dependent start, the one-padded zero conv, clear errors."""
import math

import pytest
import torch

from attnflow_core.core import FlowError, LayerExample
from attnflow_core.flows.fullglow import CondActNorm, CondInvConv1x1, FullGlowActNorm, FullGlowCoupling
from attnflow_core.nn.fullglow import GlobalCondNet, OnesPadZeroConv2d
from attnflow_core.testing import check_logdet, jacobian_logdets, prepare


@pytest.mark.parametrize("layer", ["cond", "left"])
def test_actnorms_start_at_zero_mean_and_unit_unbiased_std(layer, device):
    """Full-Glow's start: its reference uses torch.std (unbiased), Glow's ActNorm the biased estimate; with
    2·5·5 values per channel the two differ by 1 %."""
    torch.manual_seed(0)
    x = (3.0 * torch.randn(2, 3, 5, 5, dtype=torch.float64) + 2.0).to(device)
    kw = dict(dtype=torch.float64, device=device)
    if layer == "cond":
        y, _ = CondActNorm(3, 2, 5, 5).to(**kw)(x, torch.randn(2, 2, 5, 5, **kw))
    else:
        y, _ = FullGlowActNorm(3).to(**kw)(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3, **kw), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3)), torch.ones(3, **kw), atol=1e-6, rtol=0)


def test_cond_invconv_starts_orthogonal_and_equal_for_every_sample(device, dtype):
    torch.manual_seed(0)
    layer = CondInvConv1x1(4, 2, 5, 5).to(device, dtype)
    w, s = layer.weights(torch.randn(3, 2, 5, 5).to(device, dtype))
    torch.testing.assert_close(w[0] @ w[0].T, torch.eye(4, dtype=dtype, device=device), atol=1e-5, rtol=0)
    torch.testing.assert_close(w[1], w[0])
    assert s.sum(1).abs().max() < 1e-5  # |det| of a rotation is 1


@pytest.mark.parametrize("layer", ["actnorm", "invconv"])
def test_per_sample_logdets_differ_across_the_batch(layer, device):
    """Each sample gets its own log-det from its own condition (the reference returns one batch mean)."""
    torch.manual_seed(0)
    build = (lambda: CondActNorm(4, 3, 6, 6)) if layer == "actnorm" else (lambda: CondInvConv1x1(4, 3, 6, 6))
    m, x, c = prepare(LayerExample(build, (3, 4, 6, 6), (3, 3, 6, 6)), torch.float64, device, scale=0.3)
    _, logdet = m(x, c)
    expected = torch.cat([jacobian_logdets(lambda t: m(t, c[i:i + 1])[0], x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(logdet, expected, rtol=1e-6, atol=1e-8)
    assert (logdet - logdet.mean()).abs().max() > 1e-3  # a batch mean would be wrong here


def test_a_batch_mean_logdet_is_caught():
    """The reference's conditional ActNorm bug (log|s| averaged over the batch) fails the contract check."""

    class BatchMean(CondActNorm):
        contract_exempt = "deliberately broken, for this test"

        def forward(self, x, cond=None):
            y, ld = super().forward(x, cond)
            return y, ld.mean().expand_as(ld)

    m, x, c = prepare(LayerExample(lambda: BatchMean(4, 3, 6, 6), (2, 4, 6, 6), (2, 3, 6, 6)),
                      torch.float64, "cpu", scale=0.3)
    with pytest.raises(AssertionError):
        check_logdet(m, x, c)


def test_coupling_starts_at_a_fixed_contraction(device, dtype):
    layer = FullGlowCoupling(4, hidden=8, cond_channels=2, cond_hidden=4).to(device, dtype)
    x, c = torch.randn(2, 4, 5, 5).to(device, dtype), torch.randn(2, 2, 5, 5).to(device, dtype)
    y, logdet = layer(x, c)
    s = torch.sigmoid(torch.tensor(2.0, dtype=dtype))
    torch.testing.assert_close(y[:, :2], x[:, :2])
    torch.testing.assert_close(y[:, 2:], x[:, 2:] * s)
    torch.testing.assert_close(logdet, torch.full((2,), 50 * float(torch.log(s)), dtype=dtype, device=device))


def test_ones_padding_reaches_the_border_only(device, dtype):
    conv = OnesPadZeroConv2d(2, 3).to(device, dtype)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
    out = conv(torch.zeros(1, 2, 5, 5, dtype=dtype, device=device))
    assert out[0, :, 1:-1, 1:-1].abs().max() == 0  # interior: only zeros under the kernel
    assert out[0, 0, 0, 0] == 2 * 5 and out[0, 0, 0, 2] == 2 * 3  # corner: 5 padded ones per channel, edge: 3


def test_conditioning_net_needs_its_size_and_at_least_5x5():
    with pytest.raises(FlowError, match="at least 5×5"):
        GlobalCondNet(2, 4, 8, 6)
    net = GlobalCondNet(2, 6, 6, 4)
    with pytest.raises(FlowError, match="built for 6×6"):
        net(torch.randn(1, 2, 8, 8))
    layer = CondActNorm(4, 2, 6, 6)
    with pytest.raises(FlowError, match="cond must have shape"):
        layer(torch.randn(2, 4, 6, 6), torch.randn(2, 3, 6, 6))


def test_a_cond_actnorm_that_never_saw_data_is_the_identity_not_a_division_by_zero(device, dtype):
    # eval mode skips the data-dependent start; the unstarted layer must still be invertible
    layer = CondActNorm(4, 3, 6, 6).to(device, dtype).eval()
    x, c = torch.randn(2, 4, 6, 6).to(device, dtype), torch.randn(2, 3, 6, 6).to(device, dtype)
    y, logdet = layer(x, c)
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(2, dtype=dtype, device=device))
    assert torch.equal(layer.inverse(y, c), x)


def test_fullglow_coupling_scale_is_floored_so_the_inverse_stays_finite(device, dtype):
    layer = FullGlowCoupling(4, hidden=8).to(device, dtype)

    class Saturated(torch.nn.Module):  # scale logit -58: sigmoid underflows to ~1e-26 without the floor
        def forward(self, xa):
            return torch.cat([torch.full_like(xa, -60.0), torch.zeros_like(xa)], dim=1)

    layer.net = Saturated()
    x = torch.randn(2, 4, 4, 4).to(device, dtype)
    y, logdet = layer(x)
    back = layer.inverse(y)
    assert torch.isfinite(back).all() and torch.allclose(back, x, atol=1e-3)
    assert torch.allclose(logdet, torch.full((2,), 2 * 4 * 4 * math.log(1e-4), dtype=dtype, device=device), rtol=1e-4)
