"""Glow's layers beyond the generic contract: ActNorm's data-dependent init, per-sample log-dets, errors."""
import pytest
import torch

from attnflow_core import ActNorm, FlowError, IMap, InvConv1x1, Squeeze
from attnflow_core.testing import perturb_


def test_actnorm_initialises_from_data(device, dtype):
    an = ActNorm(3).to(device, dtype)
    an.train()
    x = (3 * torch.rand(64, 3, 4, 4) + 1.0).to(device, dtype)
    out, _ = an(x)
    assert bool(an.initialized)
    kw = dict(dtype=dtype, device=device)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3, **kw), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3, **kw), atol=1e-4, rtol=0)


def test_logdet_is_per_sample_not_batch_mean(device):
    layer = IMap(4).to(device, torch.float64)
    perturb_(layer)
    x = torch.randn(3, 4, 4, 4, dtype=torch.float64) * torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64).view(3, 1, 1, 1)
    x = x.to(device)
    _, logdet = layer(x)
    assert logdet.shape == (3,)
    assert len(set(logdet.tolist())) == 3


def test_invconv_inverse_is_float64_accurate_in_float32(device):
    layer = InvConv1x1(16).to(device)
    x = torch.randn(2, 16, 4, 4).to(device)
    y, _ = layer(x)
    assert (layer.inverse(y) - x).abs().max() < 1e-5


@pytest.mark.parametrize("make,x,msg", [
    (lambda: ActNorm(4), torch.zeros(2, 3, 4, 4), "3 channels but this layer was built for 4"),
    (lambda: InvConv1x1(4), torch.zeros(4, 4, 4), r"\(B, C, H, W\)"),
    (lambda: Squeeze(), torch.zeros(1, 2, 5, 4), "even height and width"),
])
def test_bad_shapes_are_refused_clearly(make, x, msg):
    with pytest.raises(FlowError, match=msg):
        make()(x)


def test_unsqueeze_needs_four_channels_per_group():
    with pytest.raises(FlowError, match="divisible by 4"):
        Squeeze().inverse(torch.zeros(1, 6, 2, 2))
