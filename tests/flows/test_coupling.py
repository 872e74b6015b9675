"""Couplings: network factories (default = the multi-scale family's nets, same keys), conditional inputs, errors."""
import math

import pytest
import torch
from torch import nn

from attnflow_core import AffineCoupling, FlowError, MixLogisticCoupling, NonFiniteError, build_model
from attnflow_core.flows.coupling import bisection_steps, mixture_inverse_cdf, mixture_log_cdf_terms
from attnflow_core.nn import AffineNet
from attnflow_core.testing import jacobian_logdets, perturb_


def test_default_factory_keeps_the_multiscale_state_dict_keys():
    keys = set(AffineCoupling(4, hidden=8).state_dict())
    assert {"net.net.0.conv.weight", "net.net.0.norm.log_scale", "net.net.0.norm.bias", "net.net.0.norm.initialized",
            "net.net.4.conv.weight", "net.net.4.logs"} <= keys
    assert isinstance(AffineCoupling(4, hidden=8).net, AffineNet)
    # Flow++ convs are weight-normalised (g, v), as in the reference mar-scf code
    keys = MixLogisticCoupling(4, hidden=8, components=2, blocks=1).state_dict()
    assert {"net.out.parametrizations.weight.original0", "net.out.parametrizations.weight.original1",
            "net.out.bias", "net.rescale.parametrizations.weight.original0"} <= set(keys)


def test_a_custom_network_factory_is_used(device, dtype):
    made = []

    def factory(cin, cout):
        made.append((cin, cout))
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        nn.init.zeros_(conv.weight)
        return conv

    layer = AffineCoupling(6, cond_channels=3, net=factory).to(device, dtype)
    assert made == [(3 + 3, 2 * 3)]
    x, c = torch.randn(2, 6, 4, 4).to(device, dtype), torch.randn(2, 3, 4, 4).to(device, dtype)
    y, ld = layer(x, c)
    torch.testing.assert_close(layer.inverse(y, c), x, atol=1e-5, rtol=0)


def test_coupling_needs_two_channels_and_its_cond():
    with pytest.raises(FlowError, match="at least 2 channels"):
        AffineCoupling(1)
    layer = AffineCoupling(4, hidden=8, cond_channels=2)
    with pytest.raises(FlowError, match="cond=None"):
        layer(torch.randn(1, 4, 4, 4))
    with pytest.raises(FlowError, match=r"cond must have shape \(1, 2, 4, 4\)"):
        layer(torch.randn(1, 4, 4, 4), torch.randn(1, 3, 4, 4))


def _perturbed_mixlogistic(form=None, device="cpu"):
    torch.manual_seed(0)
    kw = {} if form is None else {"form": form}
    layer = MixLogisticCoupling(4, hidden=8, components=3, blocks=1, dropout=0.0, **kw).to(device, torch.float64).eval()
    with torch.no_grad():
        for p in layer.parameters():  # the a and t rows start at zero: move them
            p.add_(0.1 * torch.randn_like(p))
    return layer


def test_mixlogistic_coupling_has_the_marscf_form_by_default(device):
    """mar-scf, flow_modules/mixlogcdf_coupling.py: y2 = (logit F(x2) + t)·e^a (the shift inside the scale)."""
    layer = _perturbed_mixlogistic(device=device)
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64).to(device)
    a, t, logit_pi, mu, log_s = layer.net(x[:, :2])
    f = sum(torch.softmax(logit_pi, 1)[:, i] * torch.sigmoid((x[:, 2:] - mu[:, i]) * torch.exp(-log_s[:, i]))
            for i in range(3))
    y, _ = layer(x)
    torch.testing.assert_close(y[:, 2:], (torch.logit(f) + t) * torch.exp(a), atol=1e-12, rtol=0)
    other = _perturbed_mixlogistic("flowpp", device)
    torch.testing.assert_close(other(x)[0][:, 2:], torch.logit(f) * torch.exp(a) + t, atol=1e-12, rtol=0)
    with pytest.raises(FlowError, match="unknown mixture-logistic coupling form 'glow'"):
        MixLogisticCoupling(4, hidden=8, components=2, blocks=1, form="glow")


def _reference_inverse(u, logit_pi, mu, log_s, steps=150):
    """Plain float64 bisection on logit F, many more steps than needed (the reference inverse)."""
    ends = mu + torch.exp(log_s) * u.unsqueeze(1)
    lo, hi = ends.min(1).values, ends.max(1).values
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        log_f, log_1mf, _ = mixture_log_cdf_terms(mid, logit_pi, mu, log_s)
        above = (log_f - log_1mf) > u
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _adversarial_mixtures(n=1000, k=8):
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {
        "typical": (r(n, k), r(n, k), 0.5 * r(n, k), 2 * r(n)),
        "wide brackets": (3 * r(n, k), 50 * r(n, k), 10 * torch.rand(n, k, generator=g, dtype=torch.float64) - 7,
                          5 * r(n)),
        "near-degenerate scales": (0.01 * r(n, k), 1e-3 * r(n, k), -7 + 1e-3 * r(n, k), 3 * r(n)),
        "tails": (r(n, k), r(n, k), 0.5 * r(n, k), r(n).sign() * (20 + 60 * torch.rand(n, generator=g))),
    }


@pytest.mark.parametrize("case", ["typical", "wide brackets", "near-degenerate scales", "tails"])
def test_mixture_inverse_cdf_matches_a_float64_reference_on_adversarial_mixtures(case):
    logit_pi, mu, log_s, u = _adversarial_mixtures()[case]
    ref = _reference_inverse(u, logit_pi, mu, log_s)
    scale = ref.abs().clamp(min=1.0)
    x64 = mixture_inverse_cdf(u, logit_pi, mu, log_s)
    assert ((x64 - ref).abs() / scale).max() < 1e-12
    # float32: the forward residual |logit F(x) - u| (in float64) is that of the former 60-step inverse
    args32 = [t.float() for t in (u, logit_pi, mu, log_s)]

    def residual(x):
        log_f, log_1mf, _ = mixture_log_cdf_terms(x.double(), logit_pi, mu, log_s)
        return ((log_f - log_1mf) - u).abs().max()

    assert residual(mixture_inverse_cdf(*args32)) <= 1.01 * residual(_reference_inverse(*args32, steps=60)) + 1e-12


def test_bisection_steps_follow_the_bracket_and_the_dtype():
    logit_pi, mu, log_s, u = _adversarial_mixtures()["typical"]
    ends = mu + torch.exp(log_s) * u.unsqueeze(1)
    lo, hi = ends.min(1).values, ends.max(1).values
    n32, n64 = bisection_steps(lo.float(), hi.float(), log_s.float(), 60), bisection_steps(lo, hi, log_s, 100)
    assert 25 <= n32 <= 40 and 50 <= n64 <= 70  # the former inverse ran 60 / 100
    wide = torch.full_like(lo, 1e30)
    assert bisection_steps(-wide, wide, torch.full_like(log_s, -7.0), 100) == 100  # capped


def _degenerate_affine(bias, dtype):
    """An affine coupling whose scale logits are ``bias + 2`` everywhere (shift 0): the network's zero conv
    gets a bias on its odd (scale) channels only."""
    layer = AffineCoupling(4, hidden=8).to(dtype)
    with torch.no_grad():
        layer.net.net[4].conv.bias[1::2] = bias
    return layer


def test_affine_coupling_inverse_is_finite_where_the_sigmoid_underflows(device):
    """A scale logit of −118 underflows sigmoid in float32: the inverse divided by 0 (Inf/NaN; a perturbed
    Glow + iTrans sampled at T=0.7 did). The scale is floored at 1e-4 in forward and inverse alike."""
    layer = _degenerate_affine(-120.0, torch.float32).to(device).eval()  # float32: where the sigmoid underflows
    x = torch.randn(2, 4, 4, 4).to(device)
    y, ld = layer(x)
    back = layer.inverse(y)
    assert bool(torch.isfinite(back).all()) and torch.allclose(back, x, atol=1e-5, rtol=0)
    assert torch.allclose(ld, torch.full((2,), 2 * 16 * math.log(1e-4), device=device), rtol=1e-6, atol=0)
    assert torch.allclose(y[:, 2:], 1e-4 * x[:, 2:], rtol=1e-5, atol=0)


def test_the_floored_affine_coupling_log_det_is_the_jacobian_log_det(device):
    layer = _degenerate_affine(-30.0, torch.float64).to(device).eval()
    x = torch.randn(2, 4, 2, 2, dtype=torch.float64).to(device)
    _, ld = layer(x)
    assert torch.allclose(ld, jacobian_logdets(lambda v: layer(v)[0], x), atol=1e-10, rtol=0)
    assert torch.allclose(layer.inverse(layer(x)[0]), x, atol=1e-10, rtol=0)


def _unfloored_params(self, x1, cond):  # the coupling's parameters before the floor (a private copy)
    h = self.net(self._net_input(x1, cond))
    return h[:, 0::2], h[:, 1::2] + 2.0


@pytest.mark.parametrize("attention", ["none", "imap", "itrans"])
def test_the_floor_leaves_every_number_of_a_normal_glow_unchanged(monkeypatch, attention, device, dtype):
    """Bit for bit: log p, its gradients and samples of a perturbed smoke-size Glow, floor or no floor."""
    def run():
        torch.manual_seed(0)
        m = build_model(dict(family="multiscale", backbone="glow", image_shape=(3, 8, 8), levels=2, steps=2,
                             hidden=8, attention=attention)).to(device, dtype)
        x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8).to(device)
        m.train()
        m.bits_per_dim(x)
        perturb_(m, 0.03)
        m.eval()
        lp = m.log_prob(m.dequantize(x, noise=False))
        lp.sum().backward()
        torch.manual_seed(1)
        return [lp.detach(), m.sample(4, 0.7)] + [p.grad.clone() for p in m.parameters() if p.grad is not None]

    new = run()
    monkeypatch.setattr(AffineCoupling, "_params", _unfloored_params)
    old = run()
    assert len(new) == len(old) > 2 and all(torch.equal(a, b) for a, b in zip(new, old))


def test_a_perturbed_glow_itrans_no_longer_samples_nan_in_its_couplings(device):
    """A perturbed Glow + iTrans sampled at T = 0.7 (it used to give NaN in an affine coupling): sampling fails
    (if at all) with NonFiniteError, and not in an AffineCoupling."""
    torch.manual_seed(0)
    m = build_model(dict(family="multiscale", backbone="glow", image_shape=(3, 8, 8), levels=2, steps=2, hidden=8,
                         attention="itrans")).to(device)
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8).to(device)
    m.train()
    m.bits_per_dim(x)
    m.eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch.manual_seed(1)
    try:
        s = m.sample(4, 0.7)
    except NonFiniteError as e:
        assert "AffineCoupling" not in str(e), str(e)
    else:
        assert bool(torch.isfinite(s).all())
