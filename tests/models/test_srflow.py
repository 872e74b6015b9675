"""SRFlow / cAttnFlow: the reference's parameter counts and layout, exact log-dets of the whole model given the
LR image, exact reconstruction, temperature sampling, the encoder freeze, and clear errors for bad input."""
import pytest
import torch

from attnflow_core import FlowError, build_model
from attnflow_core.models.registry import config_to_dict, make_config
from attnflow_core.models.srflow import SRFlowConfig, SRFlowModel
from attnflow_core.testing import jacobian_logdets, prepare_model

# exact counts of the reference code (andreas128/SRFlow: encoder + flow), which include an unused
# 3×3 conv (320 → 96) built in FlowUpsamplerNet and never called; we do not build it
REFERENCE = {(1, 1): 6_622_243, (2, 8): 13_253_875, (4, 16): 40_030_531}
UNUSED_CONV = 320 * 96 * 9 + 96  # 276,576
RRDB_PARAMS = 5_943_555

TINY = dict(image_shape=(3, 16, 16), steps=2, hidden=8, nf=4, nb=2, gc=4, heads=2)


def _count(**kw) -> int:
    with torch.device("meta"):
        return build_model({"family": "srflow", **kw}).num_parameters()


@pytest.mark.parametrize("L,K", [(1, 1), (2, 8), (4, 16)])
def test_parameter_counts_are_the_reference_minus_its_unused_conv(L, K):
    assert UNUSED_CONV == 276_576
    assert _count(levels=L, steps=K) == REFERENCE[(L, K)] - UNUSED_CONV
    assert {(1, 1): 6_345_667, (2, 8): 12_977_299, (4, 16): 39_753_955}[(L, K)] == REFERENCE[(L, K)] - UNUSED_CONV


def test_encoder_share_and_attention_overheads_follow_their_closed_forms():
    with torch.device("meta"):
        m = build_model({"family": "srflow", "levels": 1, "steps": 1})
    assert sum(p.numel() for p in m.rrdb.parameters()) == RRDB_PARAMS
    base11, base28 = REFERENCE[(1, 1)] - UNUSED_CONV, REFERENCE[(2, 8)] - UNUSED_CONV
    f = 320

    def imap(c):  # Conv1d C×C + bias, offset, per-channel scale, 1×1 cond conv F→1 + bias
        return c * c + c + 1 + c + f + 1

    def itrans(c, heads=5):  # query and key 1×1 convs (C+F) → heads·2C (+ bias), temperature, gamma
        return 2 * ((c + f) * heads * 2 * c + heads * 2 * c) + 2

    assert _count(levels=1, steps=1, attention="imap") == base11 + imap(12)
    assert _count(levels=1, steps=1, attention="itrans") == base11 + itrans(12)
    assert _count(levels=2, steps=8, attention="imap") == base28 + 8 * (imap(12) + imap(48))
    assert _count(levels=2, steps=8, attention="itrans") == base28 + 8 * (itrans(12) + itrans(48))
    # without the features in the attention weights: C instead of C + F inputs, no cond conv
    assert _count(levels=1, steps=1, attention="imap", attention_cond=False) == base11 + imap(12) - f - 1


def test_layout_and_split_rule_as_the_reference():
    with torch.device("meta"):
        m4 = build_model({"family": "srflow", "levels": 4, "steps": 1})
        m2 = build_model({"family": "srflow", "levels": 2, "steps": 1})
        m2c = build_model({"family": "srflow", "levels": 2, "steps": 1, "correct_splits": True})
    # reference rule (split iff level < L - 1): L=4 splits levels 1 and 2 only
    assert m4.latent_shapes == [(6, 80, 80), (12, 40, 40), None, (192, 10, 10)]
    assert m4.level_shapes == [(12, 80, 80), (24, 40, 40), (48, 20, 20), (192, 10, 10)]
    assert m2.latent_shapes == [None, (48, 40, 40)]
    assert m2c.latent_shapes == [(6, 80, 80), (24, 40, 40)]
    # squeeze, 2 unconditional steps (ActNorm + 1×1 conv), K conditional steps
    names = [type(layer).__name__ for layer in m4.levels[0].layers]
    assert names == ["Squeeze", "ActNorm", "InvConv1x1Full", "ActNorm", "InvConv1x1Full", "SRFlowStep"]
    step = [type(layer).__name__ for layer in m4.levels[0].layers[-1].layers]
    assert step == ["ActNorm", "InvConv1x1Full", "AffineInjector", "CondAffineCoupling"]


@pytest.mark.parametrize("position,index", [(1, 0), (2, 1), (3, 2), (4, 4)])
def test_attention_position_in_the_conditional_step(position, index):
    m = build_model({"family": "srflow", **TINY, "levels": 1, "attention": "imap", "position": position})
    layers = m.levels[0].layers[-1].layers
    assert type(layers[index]).__name__ == "IMap" and len(layers) == 5
    assert layers[index].cond_channels == m.cond_channels == 4 * 2  # nf·(1 + |blocks|), blocks = (1,)


def test_features_are_the_level_map_plus_resized_blocks(device, dtype):
    m = build_model({"family": "srflow", **TINY, "levels": 3}).to(device, dtype)
    lr = torch.rand(2, 3, 2, 2, dtype=dtype, device=device)
    feats = m.conditioner.encode(lr)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2)]
    raw = m.rrdb.features(lr, (1,))
    torch.testing.assert_close(feats[0][:, :4], raw["fea_up4"])
    torch.testing.assert_close(feats[2][:, :4], raw["last_lr_fea"])
    torch.testing.assert_close(feats[0][:, 4:], raw["block_1"].repeat_interleave(4, 2).repeat_interleave(4, 3))


def test_4x_levels_see_the_4x_maps_and_take_quarter_size_lr(device, dtype):
    m = build_model({"family": "srflow", **TINY, "scale": 4, "levels": 4}).to(device, dtype)  # HR 16, LR 4×4
    lr = torch.rand(2, 3, 4, 4, dtype=dtype, device=device)
    feats = m.conditioner.encode(lr)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2), (2, 8, 1, 1)]
    raw = m.rrdb.features(lr, (1,), quarter=True)
    for f, name in zip(feats, ["fea_up2", "fea_up1", "fea_up0", "fea_up-1"]):
        torch.testing.assert_close(f[:, :4], raw[name])
    assert "upconv3.weight" not in m.rrdb.state_dict()
    hr = torch.rand(2, 3, 16, 16, dtype=dtype, device=device) - 0.5
    with torch.no_grad():
        zs, _, _ = m.encode(hr, lr)
        torch.testing.assert_close(m.decode(zs, lr), hr, rtol=0, atol=1e-4 if dtype == torch.float32 else 1e-9)
    with pytest.raises(FlowError, match="4× LR is 4×4"):
        m.log_prob(hr, torch.rand(2, 3, 2, 2, dtype=dtype, device=device))
    with pytest.raises(FlowError, match="scale must be one of"):
        SRFlowConfig(scale=2, image_shape=(3, 16, 16), levels=1).validate()


def _ready(cfg, seed=0, scale=0.05, size=16, device="cpu"):
    torch.manual_seed(seed)
    m = build_model({"family": "srflow", **TINY, "image_shape": (3, size, size), **cfg}).to(device, torch.float64)
    x = (torch.rand(8, 3, size, size, dtype=torch.float64) - 0.5).to(device)
    lr = torch.rand(8, 3, size // 8, size // 8, dtype=torch.float64).to(device)
    prepare_model(m, x, lr, scale)  # data-dependent init on a batch of 8: per-channel stds of deep 1×1 maps
    return m, x[:2], lr[:2]


@pytest.mark.parametrize("cfg", [dict(correct_splits=True), dict(attention="imap"), dict(attention="itrans")],
                         ids=["srflow_split", "cattnflow_imap", "cattnflow_itrans"])
def test_whole_model_logdet_is_the_autograd_jacobian_given_the_lr(cfg, device):
    m, x, lr = _ready(dict(levels=2, steps=1, **cfg), size=8, device=device)  # HR 8×8, LR 1×1: a 192×192 Jacobian
    with torch.no_grad():
        zs, _, logdet = m.encode(x, lr)
        # float64: SRFlow's scales (< 1 + 1e-4 each) shrink the data, so the inverse amplifies rounding
        assert float((m.decode(zs, lr) - x).abs().max()) < 1e-7
        assert float((m.log_prob(x, lr) - m.log_prob(x, 1 - lr)).abs().max()) > 1e-6  # the LR matters
    flat = lambda t: torch.cat([z.reshape(1, -1) for z in m.encode(t, lr[:1])[0] if z is not None], 1)  # noqa: E731
    torch.testing.assert_close(logdet[:1], jacobian_logdets(flat, x[:1]), rtol=1e-6, atol=1e-6)


def test_four_levels_with_the_reference_splits_reconstruct_exactly(device):
    m, x, lr = _ready(dict(levels=4, steps=1), size=32, device=device)
    with torch.no_grad():
        zs, _, logdet = m.encode(x, lr)
        assert [None if z is None else tuple(z.shape[1:]) for z in zs] == [(6, 16, 16), (12, 8, 8), None, (192, 2, 2)]
        assert float((m.decode(zs, lr) - x).abs().max()) < 1e-7 and torch.isfinite(logdet).all()


def test_sampling_draws_latents_with_std_temperature_and_inverts_exactly(device):
    m, _, lr = _ready(dict(levels=2), size=8, device=device)  # reference rule at L=2: no split, one latent
    lr = lr[:1].repeat(32, 1, 1, 1)
    torch.manual_seed(3)
    x = m.sample(lr, temperature=0.3)
    with torch.no_grad():
        zs, _, _ = m.encode(x, lr)
    assert abs(float(zs[-1].std()) - 0.3) < 0.02 and abs(float(zs[-1].mean())) < 0.02
    torch.testing.assert_close(m.sample(lr, 0.0), m.sample(lr, 0.0))  # τ = 0: the mode, deterministic
    sr = m.super_resolve((lr * 255).to(torch.uint8), [0.0, 0.5])
    assert [s.dtype for s in sr] == [torch.uint8] * 2 and sr[0].shape == (32, 3, 8, 8)
    assert m.sample(32, 0.5, cond=lr).shape == (32, 3, 8, 8)


def test_bits_per_dim_takes_uint8_hr_and_lr(device):
    m, _, _ = _ready(dict(levels=1), device=device)
    hr = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8).to(device)
    lr = torch.randint(0, 256, (2, 3, 2, 2), dtype=torch.uint8).to(device)
    bpd = m.bits_per_dim(hr, lr)
    assert bpd.shape == (2,) and torch.isfinite(bpd).all()
    torch.testing.assert_close(m.log_prob(hr.double() / 256, lr), m.log_prob(hr.double() / 256, lr.double() / 255))


def test_encoder_freeze_for_a_first_fraction_then_joint_training(tmp_path, device):
    from attnflow_core.data import TensorBatches
    from attnflow_core.training import TrainConfig, fit

    torch.manual_seed(0)
    m = build_model({"family": "srflow", **TINY, "image_shape": (3, 8, 8), "levels": 1, "steps": 1,
                     "freeze_encoder_fraction": 0.5})
    hr = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    lr = torch.randint(0, 256, (8, 3, 1, 1), dtype=torch.uint8)
    seen = []

    def watch(step, model, opt):
        seen.append((step, model.is_encoder_frozen(), model.rrdb.conv_first.weight.detach().clone()))

    w0 = m.rrdb.conv_first.weight.detach().clone().to(device)
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-2, warmup_steps=0, checkpoint_every=2, log_every=1,
                      device=str(device))
    fit(m, TensorBatches(hr, lr), cfg, tmp_path, hooks=m.training_hooks(4) + [watch], progress=False)
    assert [s for s, _, _ in seen] == [1, 2, 3, 4] and [f for _, f, _ in seen] == [True, False, False, False]
    assert torch.equal(seen[0][2], w0) and torch.equal(seen[1][2], w0)  # frozen for the first 2 steps
    assert not torch.equal(seen[3][2], w0)  # then trained jointly
    fresh = SRFlowModel(m.config).to(device)
    fresh.load_state_dict(m.state_dict())
    assert not fresh.is_encoder_frozen()  # the phase is part of the checkpoint


def test_config_round_trip_through_the_registry():
    cfg = SRFlowConfig(levels=2, steps=3, attention="itrans", rrdb_blocks=(0, 1), nb=2)
    d = config_to_dict(cfg)
    assert d["family"] == "srflow" and make_config(d) == cfg
    assert cfg.feature_channels == 64 * 3 and SRFlowConfig().blocks == (1, 3, 5, 7)


def test_bad_input_is_refused_clearly():
    m = build_model({"family": "srflow", **TINY, "levels": 1})
    hr = torch.rand(2, 3, 16, 16) - 0.5
    with pytest.raises(FlowError, match="not a ×8 pair|×8 pair"):
        m.log_prob(hr, torch.rand(2, 3, 3, 3))
    with pytest.raises(FlowError, match="channels"):
        m.log_prob(hr, torch.rand(2, 1, 2, 2))
    with pytest.raises(FlowError, match="channels"):
        m.log_prob(torch.rand(2, 1, 16, 16), torch.rand(2, 3, 2, 2))
    with pytest.raises(FlowError, match="pass the LR image"):
        m.log_prob(hr)
    with pytest.raises(FlowError, match="batch size 3"):
        m.log_prob(hr, torch.rand(3, 3, 2, 2))
    with pytest.raises(FlowError, match="non-finite"):
        m.log_prob(hr, torch.full((2, 3, 2, 2), float("nan")))
    with pytest.raises(FlowError, match="non-finite"):
        m.log_prob(hr.clone().fill_(float("inf")), torch.rand(2, 3, 2, 2))
    with pytest.raises(FlowError, match=r"\[0, 1\]"):
        m.log_prob(hr, 255 * torch.rand(2, 3, 2, 2) + 1)
    with pytest.raises(FlowError, match="LR image"):
        m.sample(4, 0.5)
    with pytest.raises(FlowError, match="multiples of 8"):
        SRFlowConfig(image_shape=(3, 20, 20), levels=1).validate()
    with pytest.raises(FlowError, match="maps for 4 levels"):
        SRFlowConfig(levels=5, image_shape=(3, 64, 64)).validate()
    with pytest.raises(FlowError, match="unknown srflow config"):
        SRFlowConfig.from_dict({"levels": 1, "backbone": "glow"})


def test_train_runs_the_models_own_hooks(tmp_path, device):
    from attnflow_core.training import TrainConfig, train

    cfg = {"family": "srflow", **TINY, "image_shape": (3, 8, 8), "levels": 1, "steps": 1,
           "freeze_encoder_fraction": 0.5}
    hr = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    lr = torch.randint(0, 256, (8, 3, 1, 1), dtype=torch.uint8)
    tc = TrainConfig(steps=4, batch_size=4, lr=1e-2, warmup_steps=0, checkpoint_every=2, log_every=1,
                     device=str(device))
    res = train(cfg, tc, hr, tmp_path, progress=False, cond=lr)
    assert not res.model.is_encoder_frozen()  # the unfreeze hook ran at half-way
