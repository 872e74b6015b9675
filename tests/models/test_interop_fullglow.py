"""glow2 (Full-Glow's reference code) checkpoints through load_reference: the fixture computed by glow2 itself
(tests/fixtures/fullglow/README.md) is matched to 1e-10 in float64, a fabricated state dict with glow2's key
names loads, and every key the loader cannot place is an error that names it."""
import math
from pathlib import Path

import pytest
import torch

from attnflow_core.core.errors import CheckpointError
from attnflow_core.models import load_reference
from attnflow_core.models.interop.fullglow import glow2_bits_per_dim, infer_config

FIXTURE = Path(__file__).parents[1] / "fixtures" / "fullglow" / "glow2_tiny.pt"
TOL = dict(rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def ref(device):
    return torch.load(FIXTURE, weights_only=True, map_location=device)


def _load(state, device="cpu", **kw):
    return load_reference(state, family="fullglow", dtype=torch.float64, **kw).to(device)


def _inputs(ref):
    o = ref["outputs"]
    return o["x_b"] - 0.5, o["x_a"] - 0.5  # glow2's [0, 1] data, our [-1/2, 1/2] model space


def test_fixture_log_probs_latents_and_inverses_match_glow2(ref, device):
    m, o = _load(ref["state_dict"], device), ref["outputs"]
    photo, label = _inputs(ref)
    assert m.config.image_shape == (1, 20, 20) and (m.config.levels, m.config.steps) == (2, 2)
    with torch.no_grad():
        lp_left, lp_right = m.joint_log_prob(photo, label)
        zs, _, logdet = m.encode(photo, label)
        torch.testing.assert_close(lp_left, o["left_log_p"] + o["left_log_det"], **TOL)
        torch.testing.assert_close(lp_right, o["right_log_p"] + o["right_log_det"], **TOL)
        torch.testing.assert_close(logdet, o["right_log_det"], **TOL)  # glow2 ran one sample at a time
        for z, z_ref in zip(zs, o["right_z"], strict=True):
            torch.testing.assert_close(z, z_ref, **TOL)
        for z, z_ref in zip(m.left.encode(label)[0], o["left_z"], strict=True):
            torch.testing.assert_close(z, z_ref, **TOL)
        torch.testing.assert_close(m.decode(o["z_given"], label) + 0.5, o["right_reverse"], **TOL)
        torch.testing.assert_close(m.left.decode(o["z_given"]) + 0.5, o["left_reverse"], **TOL)


def test_glow2_bits_per_dim_reproduces_its_printed_numbers(ref, device):
    m, o = _load(ref["state_dict"], device), ref["outputs"]
    with torch.no_grad():
        left, right = glow2_bits_per_dim(m, o["photo_u8"], o["label_u8"], o["photo_noise"], o["label_noise"])
    torch.testing.assert_close(left, o["bpd_left"], **TOL)
    torch.testing.assert_close(right, o["bpd_right"], **TOL)


def test_per_sample_actnorm_logdets_average_to_glow2s_batch_mean(ref, device):
    """glow2's conditional ActNorm returns one batch-mean log-det at batch 2; ours are per sample."""
    m = _load(ref["state_dict"], device)
    photo, label = _inputs(ref)
    with torch.no_grad():
        left = m.conditioner.encode(label)
        h, _ = m.levels[0].layers[0](photo)  # squeeze
        _, logdet = m.levels[0].layers[1].layers[0](h, left.parts[0][0]["act"])
    torch.testing.assert_close(logdet.mean(), ref["outputs"]["actnorm_b2_logdet"], **TOL)
    assert (logdet[0] - logdet[1]).abs() > 1e-2


def test_data_dependent_start_matches_glow2(ref, device):
    """Both ActNorms start from the mean and the *unbiased* std of their first batch, as glow2's do."""
    init = ref["init"]
    fresh = dict(ref["state_dict"])
    for k in init["reset"]:  # glow2's values before its first forward pass
        fresh[k] = torch.ones_like(fresh[k]) if k.endswith(".scale") else torch.zeros_like(fresh[k])
    m = _load(fresh, device).train()
    photo, label = _inputs(ref)
    with torch.no_grad():
        m.joint_log_prob(photo[:1], label[:1])  # glow2 initialised on sample 0 alone
    want = _load({**ref["state_dict"], **init["after"]}, device).state_dict()
    got = m.state_dict()
    for k, v in want.items():
        torch.testing.assert_close(got[k].double(), v.double(), **TOL, msg=k)


# -- a fabricated checkpoint with glow2's key names (3-channel images, as on Cityscapes) ----------------------
def _glow2_state(c=3, size=24, levels=2, steps=1, hidden=8, cond_hidden=4, seed=0):
    """Random tensors under the key names and shapes glow2's TwoGlows (--do_lu) writes."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: 0.1 * torch.randn(*s, generator=g)
    sd, ch, hw = {}, c, size
    for lvl in range(levels):
        ch, hw = 4 * ch, hw // 2
        feat = 2 * (hw - 4) ** 2
        for side in ("left_glow", "right_glow"):
            for k in range(steps):
                p = f"{side}.blocks.{lvl}.flows.{k}."
                lu = {"w_p": torch.eye(ch)[torch.randperm(ch, generator=g)], "u_mask": torch.triu(torch.ones(ch, ch), 1),
                      "l_mask": torch.tril(torch.ones(ch, ch), -1), "s_sign": torch.ones(ch), "l_eye": torch.eye(ch)}
                sd.update({p + "inv_conv." + n: v for n, v in lu.items()})
                net_in = ch // 2 + (ch if side == "right_glow" else 0)
                sd.update({p + "coupling.net.0.weight": rnd(hidden, net_in, 3, 3), p + "coupling.net.0.bias": rnd(hidden),
                           p + "coupling.net.2.weight": rnd(hidden, hidden, 1, 1), p + "coupling.net.2.bias": rnd(hidden),
                           p + "coupling.net.4.scale": rnd(1, ch, 1, 1), p + "coupling.net.4.conv.weight": rnd(ch, hidden, 3, 3),
                           p + "coupling.net.4.conv.bias": rnd(ch)})
                if side == "left_glow":
                    sd.update({p + "act_norm.loc": rnd(1, ch, 1, 1), p + "act_norm.scale": 1 + rnd(1, ch, 1, 1).abs(),
                               p + "act_norm.initialized": torch.tensor(1, dtype=torch.uint8),
                               p + "inv_conv.w_l": rnd(ch, ch), p + "inv_conv.w_u": rnd(ch, ch), p + "inv_conv.w_s": rnd(ch)})
                    continue
                sd.update({p + "coupling.cond_net.conv_net.0.weight": rnd(cond_hidden, ch, 3, 3),
                           p + "coupling.cond_net.conv_net.0.bias": rnd(cond_hidden),
                           p + "coupling.cond_net.conv_net.2.weight": rnd(ch, cond_hidden, 3, 3),
                           p + "coupling.cond_net.conv_net.2.bias": rnd(ch)})
                for layer, out in (("act_norm", 2 * ch), ("inv_conv", 2 * ch * ch + ch)):
                    q = p + layer + ".cond_net."
                    for i, (o, n) in enumerate(((8, ch), (4, 8), (2, 4))):
                        sd.update({q + f"conv_net.conv_net.{2 * i}.weight": rnd(o, n, *((1, 1) if i == 0 else (3, 3))),
                                   q + f"conv_net.conv_net.{2 * i}.bias": rnd(o)})
                    for i, (o, n) in enumerate(((32, feat), (64, 32), (48, 64))):
                        sd.update({q + f"linear_net.linear_net.{2 * i}.weight": rnd(o, n),
                                   q + f"linear_net.linear_net.{2 * i}.bias": rnd(o)})
                    bias = rnd(out) + (torch.cat([torch.ones(ch), torch.zeros(ch)]) if layer == "act_norm" else 0)
                    sd.update({q + "linear_net.linear_net.6.linear.weight": rnd(out, 48),
                               q + "linear_net.linear_net.6.linear.bias": bias})
                    if layer == "act_norm":
                        sd[q + "linear_net.linear_net.6.initialized"] = torch.tensor(1, dtype=torch.uint8)
            last = lvl == levels - 1
            sd.update({f"{side}.blocks.{lvl}.gaussian.scale": rnd(1, 2 * ch if last else ch, 1, 1),
                       f"{side}.blocks.{lvl}.gaussian.conv.weight": rnd(2 * ch if last else ch, ch if last else ch // 2, 3, 3),
                       f"{side}.blocks.{lvl}.gaussian.conv.bias": rnd(2 * ch if last else ch)})
        ch //= 2
    return sd


def test_a_fabricated_training_checkpoint_loads_from_a_file(tmp_path):
    sd = _glow2_state()
    path = tmp_path / "optim_step=1000.pt"  # glow2's save_checkpoint layout
    torch.save({"loss": 3.0, "lr": 1e-4, "model_state_dict": sd, "optimizer_state_dict": {}}, path)
    m = _load(path)
    assert m.config.image_shape == (3, 24, 24) and m.config.label_channels == 3
    assert (m.config.levels, m.config.steps, m.config.hidden, m.config.cond_hidden) == (2, 1, 8, 4)
    torch.testing.assert_close(m.left.levels[1].layers[1].layers[1].lower, sd["left_glow.blocks.1.flows.0.inv_conv.w_l"].double())
    scale, loc = sd["left_glow.blocks.0.flows.0.act_norm.scale"], sd["left_glow.blocks.0.flows.0.act_norm.loc"]
    torch.testing.assert_close(m.left.levels[0].layers[1].layers[0].bias, (scale * (loc + 0.5)).double())  # data shift
    x, c = torch.rand(2, 3, 24, 24, dtype=torch.float64) - 0.5, torch.rand(2, 3, 24, 24, dtype=torch.float64) - 0.5
    with torch.no_grad():
        zs, _, _ = m.encode(x, c)
        assert (m.decode(zs, c) - x).abs().max() < 1e-10
    photo, label = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8), torch.randint(0, 255, (1, 3, 24, 24))
    u = torch.full((1, 3, 24, 24), 0.5, dtype=torch.float64)
    # (label values < 255 keep k/255 + u/256 - 1/2 in model space.) 3 channels: glow2's D = 3HW is the photo's dimension count, and only the dequantisation differs from ours
    lp = m.log_prob((photo / 255 + u / 256) - 0.5, (label / 255 + u / 256) - 0.5)
    want = -(lp - 1728 * math.log(256)) / (1728 * math.log(2))
    torch.testing.assert_close(glow2_bits_per_dim(m, photo, label.to(torch.uint8), u, u)[1], want)


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.update({"right_glow.blocks.0.flows.0.extra.weight": torch.zeros(1)}), "extra.weight"),
    (lambda sd: sd.pop("right_glow.blocks.1.gaussian.conv.bias"), "gaussian.conv.bias"),
    (lambda sd: sd.update({"left_glow.blocks.0.flows.0.act_norm.scale": -torch.ones(1, 12, 1, 1)}), "non-positive"),
    (lambda sd: sd.update({"right_glow.blocks.0.flows.0.inv_conv.u_mask": torch.ones(12, 12)}), "u_mask"),
    (lambda sd: sd.update({"left_glow.blocks.0.flows.0.inv_conv.weight": torch.eye(12)[..., None, None]}), "--do_lu"),
    (lambda sd: sd.update({"right_glow.blocks.0.flows.0.coupling.cond_net.conv_net.0.weight": torch.zeros(4, 15, 3, 3)}),
     "boundary maps"),
], ids=["unknown-key", "missing-key", "negative-actnorm-scale", "bad-u-mask", "non-lu", "boundary-maps"])
def test_keys_that_cannot_be_placed_are_named(edit, match):
    sd = _glow2_state()
    edit(sd)
    with pytest.raises(CheckpointError, match=match):
        _load(sd)


def test_config_must_fit_the_checkpoint():
    sd = _glow2_state()
    with pytest.raises(CheckpointError, match="missing|shape"):
        _load(sd, config={**vars(infer_config(sd)), "hidden": 16})
    with pytest.raises(CheckpointError, match="not a glow2"):
        _load({"conv.weight": torch.zeros(1)})
