"""The model engine every family shares: the loss of 8-bit images reads no values (no host sync), user
floats are still checked, and sampling never returns NaN/Inf silently but names where they appeared."""
import pytest
import torch

from attnflow_core import FlowError, NonFiniteError, build_model
from attnflow_core.core.checks import count_host_reads
from attnflow_core.testing import TINY_FAMILIES, tiny_cond
from attnflow_core.training.objectives import JointBitsPerDim

FAMILIES = TINY_FAMILIES

_cond = tiny_cond


def _initialised(name, device="cpu", dtype=torch.float32):
    torch.manual_seed(0)
    m = build_model(FAMILIES[name]).to(device, dtype)
    x = torch.randint(0, 256, (2, *m.image_shape), dtype=torch.uint8).to(device)
    c = _cond(m)
    c = None if c is None else c.to(device)
    m.train()
    m.bits_per_dim(x, c)  # data-dependent initialisation (reads the init flags once)
    return m, x, c


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_loss_of_8bit_images_reads_no_values(name, device, dtype):
    """Dequantised 8-bit images are finite and in model space by construction: the loss (and its
    backward) must not check them with a reduction and a host read every training step."""
    m, x, c = _initialised(name, device, dtype)
    with count_host_reads() as reads:
        m.bits_per_dim(x, c).mean().backward()
        if name == "fullglow":
            JointBitsPerDim()(m, (x, c)).backward()
    assert reads == [], f"{name}: the loss read tensor values {reads}"


def test_user_floats_are_still_checked(device, dtype):
    m, x, _ = _initialised("glow", device, dtype)
    xm = m.dequantize(x)
    bad = xm.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(FlowError, match=r"model input contains 1 non-finite"):
        m.log_prob(bad)
    with pytest.raises(FlowError, match=r"model input contains"):
        m.log_prob(xm * float("inf"))  # results of operations on dequantised data are not trusted
    with count_host_reads() as reads:
        m.log_prob(xm)
    assert reads == []  # the dequantised tensor itself needs no reading
    x_nan = x.to(dtype)
    x_nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(FlowError, match=r"8-bit image batch contains 1 non-finite"):
        m.bits_per_dim(x_nan)
    with pytest.raises(FlowError, match=r"values in 0\.\.255, got range \[-1, 255\]"):
        m.bits_per_dim(torch.cat([x.to(dtype), torch.full((1, *m.image_shape), -1.0, dtype=dtype, device=device)]))
    with count_host_reads() as reads:
        m.bits_per_dim(x.to(dtype))  # float 8-bit images: one combined check at the entry point
    assert len(reads) == 1
    sr, hr, lr = _initialised("srflow", device, dtype)
    bad_lr = lr.to(dtype) / 255
    bad_lr[0, 0, 0, 0] = float("inf")
    with pytest.raises(FlowError, match=r"cond contains 1 non-finite"):
        sr.bits_per_dim(hr, bad_lr)


def _poison_inverse(monkeypatch, layer):
    orig = layer.inverse

    def poisoned(y, cond=None):
        out = orig(y, cond).clone()
        out.view(-1)[0] = float("nan")
        return out

    monkeypatch.setattr(layer, "inverse", poisoned)


# (family, the poisoned layer, what the error must name); every path is a middle layer of the decode
POISONED = [
    ("glow", "levels.1.layers.1.layers.2", r"level 2 of 2, layer levels\.1\.layers\.1\.layers\.2 \(AffineCoupling\)"),
    ("marflow", "levels.0.layers.1.layers.1", r"level 1 of 2, layer levels\.0\.layers\.1\.layers\.1 \(InvConv1x1\)"),
    ("srflow", "levels.1.layers.5.layers.3",
     r"level 2 of 2, layer levels\.1\.layers\.5\.layers\.3 \(CondAffineCoupling\)"),
    ("fullglow", "levels.1.layers.1", r"level 2 of 2, layer levels\.1\.layers\.1 \(FullGlowStep\)"),
    ("resflow", "levels.0.layers.1", r"level 1 of 2, layer levels\.0\.layers\.1 \(FlooredActNorm\)"),
]


@pytest.mark.parametrize("name,path,where", POISONED, ids=[p[0] for p in POISONED])
def test_sample_names_the_first_non_finite_layer(monkeypatch, name, path, where, device, dtype):
    m, _, c = _initialised(name, device, dtype)
    m.eval()
    _poison_inverse(monkeypatch, m.get_submodule(path))
    with pytest.raises(NonFiniteError, match=r"temperature 0\.7 gave \d+ non-finite.* first appear in the inverse of "
                                             + where):
        m.sample(c if c is not None else 2, 0.7)
    if name == "srflow":
        with pytest.raises(NonFiniteError, match=where):
            m.super_resolve(c, [1.0, 0.7])


def test_sample_names_a_prior_that_draws_non_finite_latents(monkeypatch, device, dtype):
    m, _, _ = _initialised("marflow", device, dtype)
    m.eval()
    prior = m.priors[0]
    orig = prior.sample
    monkeypatch.setattr(prior, "sample", lambda *a, **k: orig(*a, **k) * float("inf"))
    with pytest.raises(NonFiniteError, match=r"latents drawn by the prior of level 1 of 2 \(priors\.0, ARChannelPrior\)"):
        m.sample(2, 0.7)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_finite_samples_cost_one_host_sync(name, device, dtype):
    """The check adds one read to sampling (residual flows' fixed-point inverse reads its own progress)."""
    m, _, c = _initialised(name, device, dtype)
    m.eval()
    with torch.no_grad(), count_host_reads() as decode_reads:
        torch.manual_seed(3)
        _, plain = m._draw(m._encode_cond(c), 2, 0.7)
    with count_host_reads() as reads:
        torch.manual_seed(3)
        s = m.sample(c if c is not None else 2, 0.7)
    assert torch.equal(s, plain) and len(reads) == len(decode_reads) + 1, reads
    assert name == "resflow" or decode_reads == []
