"""The contractive model family: parameter counts of the reference configurations against the counts of the
public code, certificates below 1, exact bits/dim bookkeeping, 1e-8 round trips, save/load, sampling."""
import math

import pytest
import torch

from attnflow_core.core.errors import FlowError
from attnflow_core.models import build_model
from attnflow_core.models.resflow import ResFlowModel, reference_config
from attnflow_core.nn.lipschitz import refresh_spectral_norms
from attnflow_core.testing import jacobian_logdets

# counted from the public code (rtqichen/residual-flows; Zha's InvertibleAttention-iResNet)
PUBLIC = {"resflow_cifar10": 25_174_233, "resflow_mnist": 16_608_693, "iresnet_cifar10": 25_028_544}
UNUSED_ROULETTE = 104  # geom_p + lamb: nn.Parameters the public Residual Flow blocks hold but never train (52 blocks)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_reference_parameter_counts(name):
    with torch.device("meta"):
        n = ResFlowModel(reference_config(name)).num_parameters()
    assert n == PUBLIC[name] - (UNUSED_ROULETTE if name.startswith("resflow") else 0)


@pytest.mark.parametrize("attention,extra", [("idp", 390), ("icon", 397)])
def test_zha_attention_adds_their_parameter_count(attention, extra):
    with torch.device("meta"):
        n = ResFlowModel(reference_config("iresnet_cifar10", attention=attention)).num_parameters()
    assert n == PUBLIC["iresnet_cifar10"] + extra


TINY = dict(family="resflow", image_shape=(1, 4, 4), scales=(1, 1), hidden=8, fc_blocks=1, fc_hidden=8)
VARIANTS = [dict(), dict(attention="acf_l2"), dict(attention="acf_dot"), dict(attention="acf_dot", attention_window=2),
            dict(arch="iresnet", logit_alpha=None, coeff=0.9, activation="elu", fc_blocks=0, attention="idp"),
            dict(arch="iresnet", logit_alpha=None, coeff=0.9, activation="elu", fc_blocks=0, attention="icon")]


def _model(device="cpu", **kw):
    torch.manual_seed(0)
    m = build_model({**TINY, **kw}).to(device, torch.float64)
    m.train()
    m.log_prob((torch.rand(16, 1, 4, 4, dtype=torch.float64) - 0.5).to(device))  # data-dependent ActNorm init
    return m.eval()


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: kw.get("attention", "none") + ("_window" if "attention_window" in kw else ""))
def test_every_branch_is_certified_below_one_and_the_model_round_trips(kw, device):
    m = _model(device, **kw)
    with torch.no_grad():  # every weight matrix inside the residual branches, 100×
        for blk in m.residual_blocks():
            for p in blk.parameters():
                p.mul_(100.0 if p.dim() > 1 else 1.0)
    refresh_spectral_norms(m)
    certs = m.lipschitz_certificates()
    assert certs and max(certs.values()) < 1.0, certs
    x = (torch.rand(3, 1, 4, 4, dtype=torch.float64) - 0.5).to(device)
    with torch.no_grad():
        zs, _, _ = m.encode(x)
        assert float((m.decode(zs) - x).abs().max()) <= 1e-8


def test_bits_per_dim_bookkeeping_equals_an_exact_computation(device):
    """log p(x) from the model (exact per-block log-dets) == log N(z) + log|det ∂z/∂x| of the whole map,
    and bits/dim adds the −D·ln 256 dequantisation term."""
    m = _model(device, logdet=dict(method="exact"), logit_alpha=0.05)
    x = (torch.rand(2, 1, 4, 4, dtype=torch.float64) - 0.5).to(device)
    lp = m.log_prob(x).detach()
    for i in range(2):
        xi = x[i:i + 1]
        enc = lambda t: torch.cat([z.flatten() for z in m.encode(t)[0] if z is not None])
        z = enc(xi)
        want = -0.5 * (z.square().sum() + 16 * math.log(2 * math.pi)) + jacobian_logdets(enc, xi)[0]
        torch.testing.assert_close(lp[i], want, rtol=1e-9, atol=1e-9)
    x8 = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8).to(device)
    torch.manual_seed(5)
    bpd = m.bits_per_dim(x8)
    torch.manual_seed(5)
    xm = m.dequantize(x8)
    torch.testing.assert_close(bpd, -(m.log_prob(xm) - 16 * math.log(256)) / (16 * math.log(2)))


def test_roulette_model_log_prob_is_unbiased_for_the_exact_one(device):
    m = _model(device, logdet=dict(n_exact_eval=4))
    x = (torch.rand(1, 1, 4, 4, dtype=torch.float64) - 0.5).to(device)
    ex = build_model({**TINY, "logdet": dict(method="exact")}).to(device, torch.float64).eval()
    ex.load_state_dict(m.state_dict())
    with torch.no_grad():
        want = float(ex.log_prob(x))
    draws = []
    for s in range(150):
        torch.manual_seed(s)
        with torch.no_grad():
            draws.append(float(m.log_prob(x)))
    d = torch.tensor(draws)
    assert abs(float(d.mean()) - want) < 4 * float(d.std()) / math.sqrt(len(d))


def test_save_load_sample_and_config_errors(device):
    m = _model(device, attention="acf_dot")
    x = (torch.rand(2, 1, 4, 4, dtype=torch.float64) - 0.5).to(device)
    fresh = build_model({**TINY, "attention": "acf_dot"}).to(device, torch.float64).eval()
    fresh.load_state_dict(m.state_dict())
    torch.manual_seed(0)
    a = m.log_prob(x).detach()
    torch.manual_seed(0)
    torch.testing.assert_close(fresh.log_prob(x).detach(), a, rtol=0, atol=0)
    s = m.sample(3, temperature=0.7)
    assert s.shape == (3, 1, 4, 4) and m.to_uint8(s).dtype == torch.uint8
    with pytest.raises(FlowError, match="i-ResNet"):
        build_model({**TINY, "attention": "idp"})
    with pytest.raises(FlowError, match="squeezed"):
        build_model({**TINY, "scales": (1, 1, 1, 1)})
    with pytest.raises(FlowError, match=r"coeff.*\(0, 1\)"):
        build_model({**TINY, "coeff": 1.0})
    with pytest.raises(FlowError, match="'hidden' must be int"):
        build_model({**TINY, "hidden": "8"})


def test_data_outside_model_space_is_refused_not_scored(device):
    m = _model(device)
    with pytest.raises(FlowError, match="float tensor.*bits_per_dim"):
        m.log_prob(torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8, device=device))
    with pytest.raises(FlowError, match=r"model space \[-0.5, 0.5\].*bits_per_dim"):
        m.log_prob(torch.rand(2, 1, 4, 4, dtype=torch.float64, device=device) * 255)  # 8-bit values passed as floats
    assert torch.isfinite(m.bits_per_dim(torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8, device=device))).all()


def test_zha_published_block_has_no_certificate():
    m = _model(arch="iresnet", logit_alpha=None, coeff=0.9, activation="elu", fc_blocks=0, attention="idp",
               attention_variant="published")
    assert m.lipschitz_certificates()["scale 1 attention"] == math.inf


def test_attention_window_config():
    """Windows that tile every scale build windowed attention (global where the window covers the map); a
    window covering every map is today's global model bit for bit; bad windows are refused by name."""
    m = _model(attention="acf_l2", attention_window=2)
    wins = [(blk.name, blk.g.net[-2].window) for blk in m.residual_blocks() if hasattr(blk.g, "net") and
            hasattr(blk.g.net[-2], "window")]
    assert wins == [("scale 1 block 1", (2, 2)), ("scale 2 block 1", (2, 2))]
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64) - 0.5
    glob, covering = _model(attention="acf_l2"), _model(attention="acf_l2", attention_window=4)
    torch.manual_seed(3)
    a = glob.log_prob(x).detach()
    torch.manual_seed(3)
    assert torch.equal(covering.log_prob(x).detach(), a)
    torch.manual_seed(3)
    assert not torch.equal(m.log_prob(x).detach(), a)  # 2×2 windows at 4×4: another model
    with pytest.raises(FlowError, match=r"attention_window at scale 1: a 3×3 attention window does not tile the 4×4"):
        build_model({**TINY, "attention": "acf_l2", "attention_window": 3})
    with pytest.raises(FlowError, match=r"attention_window=2 applies to attention in \['acf_l2', 'acf_dot'\]"):
        build_model({**TINY, "attention_window": 2})
    with pytest.raises(FlowError, match="'attention_window' must be int"):
        build_model({**TINY, "attention": "acf_dot", "attention_window": "2"})


def _keys_fixture():
    import json
    from pathlib import Path

    p = Path(__file__).parents[1] / "fixtures" / "state_dict_keys" / "attention_models.json"
    return {n: v for n, v in json.loads(p.read_text()).items() if v["config"]["family"] == "resflow"}


@pytest.mark.parametrize("name,case", sorted(_keys_fixture().items()))
def test_state_dict_keys_are_the_base_commits(name, case):
    torch.manual_seed(0)
    assert list(build_model(case["config"]).state_dict()) == case["keys"]


def test_the_contractive_family_uses_heads_and_refuses_options_its_attention_ignores():
    with pytest.raises(FlowError, match="'attention_heads' is now 'heads'"):
        build_model({**TINY, "attention": "acf_l2", "attention_heads": 2})
    with pytest.raises(FlowError, match=r"config.heads=2 applies to attention in \['acf_l2'\], not to attention='acf_dot'"):
        build_model({**TINY, "attention": "acf_dot", "heads": 2})
    zha = dict(arch="iresnet", logit_alpha=None, coeff=0.9, activation="elu", fc_blocks=0, attention="idp")
    with pytest.raises(FlowError, match="zha_normalise='column' applies to Zha's published form only"):
        build_model({**TINY, **zha, "zha_normalise": "column"})
    with pytest.raises(FlowError, match=r"attention_variant='published' applies to attention in \['idp', 'icon'\]"):
        build_model({**TINY, "attention": "acf_l2", "attention_variant": "published"})
    m = build_model({**TINY, **zha, "attention_variant": "published", "zha_normalise": "column"})
    assert [b.g.normalise for b in m.residual_blocks() if b.name == "scale 1 attention"] == ["column"]
