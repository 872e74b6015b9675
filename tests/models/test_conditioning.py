"""Conditioning seams: the pooled default, an encoder trained jointly, explicit per-level/per-step routing."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnflow_core import EncoderConditioner, FlowError, FlowModel, PooledConditioner
from attnflow_core.core import flatten_latents
from attnflow_core.testing import jacobian_logdets, prepare_model

CFG = dict(image_shape=(3, 8, 8), levels=2, steps=2, hidden=8, heads=2, attention="imap", cond_channels=2)


class TwoLevelEncoder(nn.Module):
    """cond (B, 1, 8, 8) -> one 2-channel feature map per level (4×4 and 2×2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, cond):
        f = torch.tanh(self.conv(cond))
        return [F.avg_pool2d(f, 2), F.avg_pool2d(f, 4)]


def _check_exact(m, x, c):
    """decode(encode(x)) == x and the log-det equals slogdet of the autograd Jacobian (first sample)."""
    zs, _, logdet = m.encode(x, c)
    assert (m.decode(zs, c) - x).abs().max() < 1e-10
    expected = jacobian_logdets(lambda t: flatten_latents(m.encode(t, c[:1])[0]), x[:1])
    torch.testing.assert_close(logdet[:1], expected, rtol=1e-6, atol=1e-8)


def test_pooled_default_is_average_pooling():
    r = PooledConditioner()
    c = torch.randn(2, 2, 8, 8)
    torch.testing.assert_close(r.route(c, 0, 1, (12, 4, 4)), F.adaptive_avg_pool2d(c, (4, 4)))
    assert r.route(c, 0, 1, (2, 8, 8)) is c


def test_conditional_model_is_exact_and_cond_matters(device):
    torch.manual_seed(0)
    m = FlowModel(CFG).to(device, torch.float64)
    x = (torch.rand(3, 3, 8, 8, dtype=torch.float64) - 0.5).to(device)
    c = torch.randn(3, 2, 8, 8, dtype=torch.float64).to(device)
    prepare_model(m, x, c)
    _check_exact(m, x, c)
    assert (m.log_prob(x, c) - m.log_prob(x, c + 1)).abs().max() > 1e-6


def test_encoder_is_trained_jointly_and_routed_per_level(device):
    torch.manual_seed(0)
    enc = TwoLevelEncoder()
    m = FlowModel(CFG, conditioner=EncoderConditioner(enc)).to(device, torch.float64)
    assert {id(p) for p in enc.parameters()} <= {id(p) for p in m.parameters()}
    x = (torch.rand(2, 3, 8, 8, dtype=torch.float64) - 0.5).to(device)
    c = torch.randn(2, 1, 8, 8, dtype=torch.float64).to(device)
    prepare_model(m, x, c)
    _check_exact(m, x, c)
    m.log_prob(x, c).sum().backward()
    assert enc.conv.weight.grad is not None and enc.conv.weight.grad.abs().sum() > 0
    s = m.sample(2, temperature=0.5, cond=c)
    assert s.shape == x.shape and torch.isfinite(s).all()


def test_per_step_routing_is_explicit(device, dtype):
    seen = []

    def router(encoded, level, step, shape):
        seen.append((level, step))
        return encoded[level][step] if step is not None and step > 0 else None

    torch.manual_seed(0)
    feats = lambda c: [[None] + [c[:, :2, ::2, ::2] * (j + 1) for j in range(2)],  # noqa: E731
                       [None] + [c[:, :2, ::4, ::4] * (j + 1) for j in range(2)]]
    m = FlowModel(CFG, conditioner=EncoderConditioner(_Lambda(feats), router=router)).to(device, dtype)
    x = torch.rand(2, 3, 8, 8, dtype=dtype, device=device) - 0.5
    assert torch.isfinite(m.log_prob(x, torch.randn(2, 2, 8, 8, dtype=dtype, device=device))).all()
    # every layer of every level (squeeze = 0, steps 1..K) was asked for, in order
    assert [(lv, st) for lv, st in seen if st is not None] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, c):
        return self.fn(c)


def test_encoder_routing_errors_are_clear():
    torch.manual_seed(0)
    m = FlowModel(CFG, conditioner=EncoderConditioner(_Lambda(lambda c: [c[:, :2, ::2, ::2]])))
    with pytest.raises(FlowError, match="level 1 needs an entry"):
        m.log_prob(torch.rand(1, 3, 8, 8) - 0.5, torch.randn(1, 2, 8, 8))


def test_conditional_model_needs_cond_of_the_right_batch(device, dtype):
    m = FlowModel(CFG).to(device, dtype)
    kw = dict(dtype=dtype, device=device)
    with pytest.raises(FlowError, match="pass cond"):
        m.log_prob(torch.rand(2, 3, 8, 8, **kw))
    with pytest.raises(FlowError, match="batch size 3"):
        m.log_prob(torch.rand(2, 3, 8, 8, **kw), torch.randn(3, 2, 8, 8, **kw))
    with pytest.raises(FlowError, match="non-finite"):
        m.log_prob(torch.rand(2, 3, 8, 8, **kw), torch.full((2, 2, 8, 8), float("nan"), **kw))
