"""Whole multi-scale models: every attention kind × mask × position, exact inverse and exact log-det,
sampling, bits/dim bookkeeping, errors."""
import io

import pytest
import torch

from attnflow_core import FlowError, build_model
from attnflow_core.attention import POSITIONS
from attnflow_core.attention.masks import MASK_KINDS
from attnflow_core.core import flatten_latents
from attnflow_core.testing import jacobian_logdets, prepare_model

SMALL = dict(image_shape=(3, 8, 8), levels=2, steps=1, hidden=8, heads=2)


def _model(dtype=torch.float64, device="cpu", **kw):
    cfg = {**SMALL, **kw}
    m = build_model(cfg).to(device, dtype)
    x = (torch.rand(3, *cfg["image_shape"], dtype=dtype) - 0.5).to(device)
    return prepare_model(m, x), x


def _check_model(m, x):
    zs, _, logdet = m.encode(x)
    xr = m.decode(zs)
    assert (xr - x).abs().max() < 1e-10
    expected = jacobian_logdets(lambda t: flatten_latents(m.encode(t)[0]), x[:2])
    torch.testing.assert_close(logdet[:2], expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("mask", MASK_KINDS)
@pytest.mark.parametrize("attention", ["imap", "itrans"])
def test_attention_model_exact(attention, mask, position, device):
    m, x = _model(device=device, attention=attention, mask=mask, position=position)
    _check_model(m, x)


@pytest.mark.parametrize("backbone", ["glow", "marflow"])
@pytest.mark.parametrize("coupling", ["affine", "mixlogistic"])
def test_backbones_exact(backbone, coupling, device):
    m, x = _model(device=device, backbone=backbone, coupling=coupling, attention="itrans", components=3, blocks=1, dropout=0.0)
    _check_model(m, x)
    lp = m.log_prob(x)
    assert lp.shape == (3,) and torch.isfinite(lp).all()


def test_round_trip_whole_model(device, dtype):
    m, x = _model(dtype, device, backbone="marflow", attention="imap")
    with torch.no_grad():
        zs, _, _ = m.encode(x)
        assert (m.decode(zs) - x).abs().max() < (1e-5 if dtype == torch.float32 else 1e-10)


def test_attention_position_is_where_asked():
    from attnflow_core import ActNorm, AffineCoupling, IMap, InvConv1x1
    order = [ActNorm, InvConv1x1, AffineCoupling]
    for pos in POSITIONS:
        m = build_model(SMALL, attention="imap", position=pos)
        step = m.levels[0][1]
        kinds = [type(l) for l in step.layers]
        assert kinds.index(IMap) == pos - 1
        assert [k for k in kinds if k is not IMap] == order


def test_sampling_and_temperature(device, dtype):
    m, _ = _model(dtype, device, backbone="marflow", attention="itrans")
    torch.manual_seed(0)
    s = m.sample(4, temperature=0.7)
    assert s.shape == (4, 3, 8, 8) and s.dtype == dtype and s.device.type == device.type and torch.isfinite(s).all()
    s0a, s0b = m.sample(2, temperature=0.0), m.sample(2, temperature=0.0)
    torch.testing.assert_close(s0a, s0b)  # temperature 0: the deterministic mode path
    u8 = m.to_uint8(s)
    assert u8.dtype == torch.uint8


def test_bits_per_dim_counts_dequantisation(device):
    m, _ = _model(torch.float64, device)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8).to(device)
    bpd = m.bits_per_dim(x, noise=False)
    xm = (x.double() + 0.5) / 256 - 0.5
    d = 3 * 8 * 8
    manual = -(m.log_prob(xm) - d * torch.log(torch.tensor(256.0, dtype=torch.float64))) / (d * torch.log(torch.tensor(2.0, dtype=torch.float64)))
    torch.testing.assert_close(bpd, manual)


def test_actnorm_initialised_flag_survives_state_dict(device, dtype):
    m, x = _model(dtype, device)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    fresh = build_model(SMALL).to(device, dtype)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    fresh.train()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    fresh.log_prob(torch.rand(5, 3, 8, 8, dtype=dtype, device=device) * 3)  # very different data: a re-init would change ActNorm
    after = fresh.state_dict()
    for k in before:
        if "log_scale" in k or k.endswith(".bias"):
            torch.testing.assert_close(before[k], after[k], msg=f"{k} was re-initialised after load")


@pytest.mark.parametrize("bad,msg", [
    (dict(backbone="realnvp"), "backbone"),
    (dict(attention="axial"), "attention"),
    (dict(position=5), "position"),
    (dict(mask="stripes"), "mask"),
    (dict(image_shape=(1, 28, 28), levels=3), "cannot be squeezed"),
    (dict(levels=0), "levels"),
    (dict(foo=1), "unknown multiscale config"),
])
def test_bad_config_is_refused_clearly(bad, msg):
    with pytest.raises(FlowError, match=msg):
        build_model({**SMALL, **bad})


def test_bad_inputs_are_refused_clearly():
    m, _ = _model(torch.float32)
    with pytest.raises(FlowError, match="channels"):
        m.bits_per_dim(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(FlowError, match="shape"):
        m.bits_per_dim(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(FlowError, match="non-finite"):
        m.bits_per_dim(torch.full((2, 3, 8, 8), float("nan")))
    with pytest.raises(FlowError, match="0..255"):
        m.bits_per_dim(torch.rand(2, 3, 8, 8) - 0.5)
    with pytest.raises(FlowError, match=r"\(B, C, H, W\)"):
        m.log_prob(torch.zeros(3, 8, 8))
    with pytest.raises(FlowError, match="n >= 1"):
        m.sample(0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_log_prob_and_encode_refuse_non_finite_input(bad, device, dtype):
    m, x = _model(dtype, device)
    x = x.clone()
    x[1, 0, 2, 3] = bad
    with pytest.raises(FlowError, match="non-finite"):
        m.log_prob(x)
    with pytest.raises(FlowError, match="non-finite"):
        m.encode(x)


def test_attention_kinds_come_from_the_registry():
    from attnflow_core.attention import ATTENTION_KINDS, ATTENTIONS

    assert set(ATTENTION_KINDS) == {"none", *ATTENTIONS.names()} and {"imap", "itrans"} <= set(ATTENTIONS.names())
