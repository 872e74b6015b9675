"""Restoration metrics against independent implementations: PSNR / SSIM against scikit-image, MATLAB-style
bicubic against a direct per-pixel formula, PIL and torch's antialiased bicubic; LR-PSNR, LPIPS's n/a path and
Table 4's temperature sweep."""
import math

import numpy as np
import pytest
import torch

from attnflow_core.core import FlowError
from attnflow_core.data.resize import imresize
from attnflow_core.metrics import LPIPS, evaluate_bicubic, evaluate_sr, lr_psnr, psnr, ssim

skm = pytest.importorskip("skimage.metrics")


def _pairs(seed=0, shape=(5, 3, 40, 37), noise=30):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    smooth = imresize(imresize(a, 0.25), size=shape[-2:])  # structured content, not only noise
    b = (smooth.int() + torch.randint(-noise, noise + 1, shape, generator=g)).clamp(0, 255).to(torch.uint8)
    return smooth, b


@pytest.mark.parametrize("shape", [(5, 3, 40, 37), (2, 3, 7, 9), (3, 1, 16, 16)])
def test_psnr_and_ssim_equal_skimage(shape):
    a, b = _pairs(shape=shape)
    p, s = psnr(a, b), ssim(a, b)
    for i in range(shape[0]):
        x, y = a[i].permute(1, 2, 0).numpy(), b[i].permute(1, 2, 0).numpy()
        assert p[i].item() == pytest.approx(skm.peak_signal_noise_ratio(x, y), rel=1e-12)
        assert s[i].item() == pytest.approx(skm.structural_similarity(x, y, channel_axis=-1), rel=1e-10, abs=1e-12)
    assert torch.isinf(psnr(a, a)).all() and torch.allclose(ssim(a, a), torch.ones(shape[0], dtype=torch.float64))


def _cubic(t):
    t = abs(t)
    return 1.5 * t**3 - 2.5 * t**2 + 1 if t <= 1 else (-0.5 * t**3 + 2.5 * t**2 - 4 * t + 2 if t <= 2 else 0.0)


def _direct_matrix(n_in, n_out):
    """The MATLAB recipe written out pixel by pixel, with explicit symmetric mirroring."""
    s = n_out / n_in
    m = np.zeros((n_out, n_in))
    for x in range(1, n_out + 1):
        u = x / s + 0.5 * (1 - 1 / s)
        width = 4 / s if s < 1 else 4.0
        left = math.floor(u - width / 2)
        for j in range(left, left + math.ceil(width) + 2):
            w = s * _cubic(s * (u - j)) if s < 1 else _cubic(u - j)
            jj = 1 - j if j < 1 else (2 * n_in + 1 - j if j > n_in else j)
            m[x - 1, jj - 1] += w
        m[x - 1] /= m[x - 1].sum()
    return m


@pytest.mark.parametrize("size", [(5, 6), (20, 22), (160, 160), (64, 90)])
def test_imresize_equals_the_direct_formula_everywhere(size):
    x = torch.rand(40, 45, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 255
    expected = _direct_matrix(40, size[0]) @ x.numpy() @ _direct_matrix(45, size[1]).T
    np.testing.assert_allclose(imresize(x, size=size).numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("size", [(20, 22), (40, 45), (640, 712)])
def test_imresize_interior_equals_pil_and_torch_antialiased_bicubic(size):
    from PIL import Image

    x = torch.rand(160, 178, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 255
    y = imresize(x, size=size).numpy()
    pil = np.asarray(Image.fromarray(x.numpy().astype(np.float32), mode="F").resize(size[::-1], Image.BICUBIC))
    tch = torch.nn.functional.interpolate(x[None, None], size=size, mode="bicubic", antialias=True)[0, 0].numpy()
    # both clip the kernel at the border instead of mirroring: compare away from the border
    mh, mw = size[0] // 8 + 3, size[1] // 8 + 3
    inner = (slice(mh, -mh), slice(mw, -mw))
    np.testing.assert_allclose(y[inner], pil[inner], rtol=0, atol=1e-3)  # PIL: float32
    np.testing.assert_allclose(y[inner], tch[inner], rtol=0, atol=1e-8)


def test_imresize_keeps_constants_and_reproduces_a_ramp():
    for shape, scale in (((3, 40, 24), 1 / 8), ((3, 5, 7), 8.0), ((1, 33, 17), 0.37)):
        c = torch.full(shape, 77, dtype=torch.uint8)
        assert torch.equal(torch.unique(imresize(c, scale)), torch.tensor([77], dtype=torch.uint8))
    ramp = torch.arange(1, 161, dtype=torch.float64).repeat(3, 1)  # value = 1-based column index
    down = imresize(ramp, size=(3, 20))[0]
    centres = 8 * torch.arange(1, 21, dtype=torch.float64) - 3.5  # u = 8x − 3.5
    torch.testing.assert_close(down[3:-3], centres[3:-3], rtol=0, atol=1e-12)
    up = imresize(torch.arange(1, 21, dtype=torch.float64).repeat(3, 1), size=(3, 160))[0]
    u = torch.arange(1, 161, dtype=torch.float64) / 8 + 7 / 16
    torch.testing.assert_close(up[16:-16], u[16:-16], rtol=0, atol=1e-12)


def test_imresize_uint8_rounds_and_clips():
    edge = torch.zeros(1, 4, 8, dtype=torch.uint8)
    edge[..., 4:] = 255
    f = imresize(edge.double(), 4.0)
    assert f.min() < 0 and f.max() > 255  # the cubic overshoots at a step edge
    assert torch.equal(imresize(edge, 4.0), torch.floor(f + 0.5).clamp(0, 255).to(torch.uint8))


def test_lr_psnr_downscales_the_sr_image_by_bicubic():
    hr = _pairs(shape=(2, 3, 32, 40))[0]
    lr = imresize(hr, 1 / 8)
    assert torch.isinf(lr_psnr(lr, hr)).all()  # an SR image that explains its LR exactly
    noisy = (hr.int() + 20).clamp(0, 255).to(torch.uint8)
    torch.testing.assert_close(lr_psnr(lr, noisy), psnr(lr, imresize(noisy, 1 / 8)))
    with pytest.raises(FlowError, match="×8 pair"):
        lr_psnr(lr, hr[..., :16])
    with pytest.raises(FlowError, match="uint8"):
        psnr(hr.float(), hr.float())


def test_lpips_is_na_with_a_reason_without_weights_and_runs_with_them(monkeypatch):
    import types

    import lpips
    from torch import nn

    def random_alexnet_features():  # AlexNet's conv trunk, random: no 58 M-parameter classifier to initialise
        conv = lambda i, o, k, s=1, p=1: nn.Conv2d(i, o, k, s, p)  # noqa: E731
        return nn.Sequential(conv(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), conv(64, 192, 5, 1, 2), nn.ReLU(),
                             nn.MaxPool2d(3, 2), conv(192, 384, 3), nn.ReLU(), conv(384, 256, 3), nn.ReLU(),
                             conv(256, 256, 3), nn.ReLU(), nn.MaxPool2d(3, 2))

    def offline(**kw):
        raise OSError("no network (simulated)")

    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", offline)
    metric = LPIPS()
    assert not metric.available and "weights" in metric.reason and "simulated" in metric.reason
    with pytest.raises(FlowError, match="not available"):
        metric(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    # plumbing only (a random AlexNet is never used for numbers): the wrapper feeds [-1, 1] images
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda **kw: types.SimpleNamespace(features=random_alexnet_features()))
    metric = LPIPS()
    a, b = _pairs(shape=(2, 3, 64, 64))
    d = metric(a, b)
    assert metric.available and d.shape == (2,) and (d > 0).all() and float(metric(a, a).abs().max()) < 1e-6


def test_temperature_sweep_averages_over_temperatures_and_restores_the_rng(device):
    from attnflow_core import build_model

    torch.manual_seed(0)
    m = build_model({"family": "srflow", "image_shape": (3, 16, 16), "levels": 1, "steps": 1, "hidden": 8,
                     "nf": 4, "nb": 1, "gc": 4}).to(device)
    hr = _pairs(shape=(3, 3, 16, 16))[0]
    lr = imresize(hr, 1 / 8)
    state = torch.get_rng_state()
    ev = evaluate_sr(m, hr, lr, (0.1, 0.7), batch_size=2, keep=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert [r["temperature"] for r in ev["by_temperature"]] == [0.1, 0.7] and ev["n"] == 3 and ev["lpips"] is None
    for k in ("psnr", "ssim", "lr_psnr"):
        assert ev[k] == pytest.approx(sum(r[k] for r in ev["by_temperature"]) / 2)
    assert ev["examples"][0.7].shape == (2, 3, 16, 16) and ev["examples"][0.7].dtype == torch.uint8
    again = evaluate_sr(m, hr, lr, (0.1, 0.7), batch_size=2)
    assert again["psnr"] == ev["psnr"]  # seeded
    bic = evaluate_bicubic(hr, lr)
    assert bic["psnr"] == pytest.approx(float(psnr(hr, imresize(lr, 8.0)).mean()))
