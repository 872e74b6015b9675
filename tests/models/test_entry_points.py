"""The entry-point checks the engine owns, for every family: ``sample`` refuses a non-positive ``n``, a
non-finite temperature and a condition of the wrong batch; integer images other than uint8 are scored only
at a declared bit depth (never as if 8-bit); ``log_prob(sample(n))`` is defined for every family."""
import math

import pytest
import torch

from attnflow_core import FlowError, build_model
from attnflow_core.testing import TINY_FAMILIES, tiny_cond

FAMILIES = TINY_FAMILIES
CLASS = {"glow": "FlowModel", "marflow": "FlowModel", "srflow": "SRFlowModel", "fullglow": "FullGlow",
         "resflow": "ResFlowModel"}

_cond = tiny_cond


def _model(name, seed=0, device="cpu", dtype=torch.float32):
    torch.manual_seed(seed)
    m = build_model(FAMILIES[name]).to(device, dtype)
    x = torch.randint(0, 256, (2, *m.image_shape), dtype=torch.uint8).to(device)
    c = _cond(m)
    c = None if c is None else c.to(device)
    m.train()
    m.bits_per_dim(x, c)  # data-dependent initialisation
    return m.eval(), x, c


def _sample(m, n, temperature=0.7, c=None):
    return m.sample(n, temperature) if c is None else m.sample(n, temperature, cond=c)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_sample_refuses_no_samples(name, device):
    """n < 1 is refused by the engine, naming the family (SRFlow's and Full-Glow's sample overrides used to
    skip the check: an empty LR/label batch reached the flow, and Full-Glow failed inside torch.aminmax)."""
    m, _, c = _model(name, device=device)
    empty = None if c is None else c[:0]
    with pytest.raises(FlowError, match=rf"{CLASS[name]}\.sample needs n >= 1 samples, got n=0"):
        _sample(m, 0, c=empty)
    if c is not None:  # the condition batch in place of n: the same check
        with pytest.raises(FlowError, match=r"needs n >= 1 samples, got n=0"):
            m.sample(c[:0], 0.7)
    with pytest.raises(FlowError, match=r"needs n >= 1 samples, got n=-1"):
        _sample(m, -1, c=empty)
    with pytest.raises(FlowError, match=r"as an int, got float"):
        _sample(m, 2.0, c=c)


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("temperature", [float("inf"), float("nan"), -0.5])
def test_sample_refuses_a_bad_temperature(name, temperature, device):
    m, _, c = _model(name, device=device)
    with pytest.raises(FlowError, match=r"temperature must be finite and >= 0"):
        _sample(m, 2, temperature, c)


@pytest.mark.parametrize("name", ["srflow", "fullglow"])
def test_sample_refuses_a_condition_of_another_batch(name, device):
    m, _, c = _model(name, device=device)
    with pytest.raises(FlowError, match=r"cond has batch size 2 but n=3 samples were asked for"):
        m.sample(3, 0.7, cond=c)
    with pytest.raises(FlowError, match=r"conditioned on|conditional"):
        m.sample(2, 0.7)


def test_super_resolve_checks_its_temperatures_and_batch(device):
    m, _, c = _model("srflow", device=device)
    with pytest.raises(FlowError, match=r"temperature must be finite"):
        m.super_resolve(c, [0.5, float("inf")])
    with pytest.raises(FlowError, match=r"needs n >= 1 samples, got n=0"):
        m.super_resolve(c[:0], 0.5)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_log_prob_of_samples_is_defined(name, device, dtype):
    """Samples lie where log_prob is defined (an untrained Residual Flow's logit inverse left [-1/2, 1/2])."""
    m, _, c = _model(name, device=device, dtype=dtype)
    n = 64 if c is None else 2  # 64 Residual Flow samples reach [-0.554, 0.542] without the clamp
    torch.manual_seed(1)
    s = _sample(m, n, 1.0, c)
    with torch.no_grad():
        lp = m.log_prob(s, c)
    assert s.dtype == dtype and lp.shape == (n,) and bool(torch.isfinite(lp).all())
    assert name != "resflow" or (float(s.min()) >= -0.5 and float(s.max()) <= 0.5)


def _bpd(m, x, c, **kw):
    torch.manual_seed(5)  # the residual flows' log-det estimator draws noise
    return m.bits_per_dim(x, c, noise=False, **kw) if c is not None else m.bits_per_dim(x, noise=False, **kw)


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64])
def test_integer_images_other_than_uint8_need_a_bit_depth(name, dtype, device):
    """16-bit images stored as int32 (or label IDs as int64) used to be scored as 8-bit ones."""
    m, x, c = _model(name, device=device)
    with torch.no_grad():
        with pytest.raises(FlowError, match=rf"integer dtype {dtype}.*only uint8 is read as 8-bit.*bits=16"):
            _bpd(m, x.to(dtype), c)
        # declared 8-bit: exactly the uint8 numbers
        assert torch.equal(_bpd(m, x.to(dtype), c, bits=8), _bpd(m, x, c))
        with pytest.raises(FlowError, match=rf"dtype {dtype} was declared 8-bit \(values 0\.\.255\), got values in "
                                            r"\[\d+, 256\]"):
            _bpd(m, torch.where(x == x.max(), 256, x.to(dtype)), c, bits=8)


@pytest.mark.parametrize("name", ["glow", "srflow", "fullglow"])
def test_a_declared_bit_depth_scales_the_images(name, device, dtype):
    """bits=b: x̃ = (k + 1/2)/2^b − 1/2 and bpd = −(log p(x̃) − D log 2^b)/(D ln 2)."""
    m, x, c = _model(name, device=device, dtype=dtype)
    k = (x.to(torch.int32) << 8) + torch.randint(0, 256, x.shape, dtype=torch.int32).to(device)
    with torch.no_grad():
        torch.manual_seed(5)
        lp = m.log_prob((k.to(dtype) + 0.5) / 65536.0 - 0.5, c)
        want = -(lp - m.dims * 16 * math.log(2.0)) / (m.dims * math.log(2.0))
        assert torch.allclose(_bpd(m, k, c, bits=16), want, rtol=1e-6, atol=0)
        with pytest.raises(FlowError, match=r"declared 16-bit \(values 0\.\.65535\), got values in \[\d+, 70000\]"):
            _bpd(m, torch.where(k == k.max(), 70000, k), c, bits=16)
        with pytest.raises(FlowError, match=r"bits .* must be an integer in 1\.\.16, got 17"):
            _bpd(m, k, c, bits=17)


def test_full_glow_refuses_integer_label_ids(device):
    """int64 label IDs (or 0/1 one-hots) are not 8-bit label values: refused, pointing to onehot()."""
    m, x, c = _model("fullglow", device=device)
    ids = torch.randint(0, 34, c.shape, dtype=torch.int64).to(device)
    with torch.no_grad(), pytest.raises(FlowError, match=r"label map has dtype torch.int64.*onehot"):
        m.bits_per_dim(x, ids)
    with torch.no_grad(), pytest.raises(FlowError, match=r"label map has dtype torch.int64"):
        m.sample(ids, 0.7)


def test_srflow_refuses_integer_lr_images_other_than_uint8(device):
    m, x, c = _model("srflow", device=device)
    with torch.no_grad(), pytest.raises(FlowError, match=r"LR image \(cond\) has dtype torch.int64"):
        m.bits_per_dim(x, (c > 127).to(torch.int64))
