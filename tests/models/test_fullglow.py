"""Full-Glow / cAttnFlow as a whole: the right Glow's per-sample log-det against the autograd Jacobian at
batch 2, exact reconstruction, the joint loss, sampling, parameter counts (Table 5) and bad input."""
import math

import pytest
import torch

from attnflow_core import FlowError, build_model
from attnflow_core.core import flatten_latents
from attnflow_core.models.fullglow import FullGlow
from attnflow_core.testing import jacobian_logdets, prepare_model
from attnflow_core.training.objectives import JointBitsPerDim

# 1-channel photos keep the Jacobian small (400 dims at two levels, 144 at one); a 3-channel label makes the
# left Glow differ in shape from the right one
TINY = dict(family="fullglow", image_shape=(1, 20, 20), label_channels=3, levels=2, steps=1, hidden=8,
            cond_hidden=4, heads=2)
ONE_LEVEL = {**TINY, "image_shape": (1, 12, 12), "levels": 1}


def _ready(cfg, batch=2, seed=0, device="cpu"):
    torch.manual_seed(seed)
    m = build_model(cfg).to(device, torch.float64)
    x = (torch.rand(batch, *m.image_shape, dtype=torch.float64) - 0.5).to(device)
    c = (torch.rand(batch, *m.label_shape, dtype=torch.float64) - 0.5).to(device)
    return prepare_model(m, x, c, seed=seed), x, c  # data-dependent initialisation of both Glows


@pytest.mark.parametrize("cfg", [TINY, {**ONE_LEVEL, "attention": "imap", "position": 2},
                                 {**ONE_LEVEL, "attention": "itrans", "position": 1}],
                         ids=["fullglow-L2", "imap-pos2-L1", "itrans-pos1-L1"])
def test_right_glow_logdet_matches_autograd_at_batch_2(cfg, device):
    m, x, c = _ready(cfg, device=device)
    zs, _, logdet = m.encode(x, c)  # one batch-2 pass
    expected = torch.cat([jacobian_logdets(lambda t: flatten_latents(m.encode(t, c[i:i + 1])[0]), x[i:i + 1])
                          for i in range(2)])
    torch.testing.assert_close(logdet, expected, rtol=1e-6, atol=1e-8)
    assert (logdet[0] - logdet[1]).abs() > 1e-3  # per-sample values, not a batch mean
    assert (m.decode(zs, c) - x).abs().max() < 1e-10


def test_log_prob_is_the_right_glow_change_of_variables(device):
    m, x, c = _ready(TINY, device=device)
    zs, contexts, logdet = m.encode(x, c)
    lp = logdet + sum(p.log_prob(z, h) for p, z, h in zip(m.priors, zs, contexts))
    torch.testing.assert_close(m.log_prob(x, c), lp)
    lp_left = m.left.log_prob(c)  # the left Glow on its own: an unconditional density of the label map
    torch.testing.assert_close(m.joint_log_prob(x, c)[0], lp_left)
    assert (m.log_prob(x, c) - m.log_prob(x, 0.5 * c)).abs().max() > 1e-6  # the label matters


def test_joint_loss_trains_both_glows_and_is_the_weighted_sum(device):
    m, x, c = _ready(TINY, device=device)
    m.train()
    x8 = torch.randint(0, 256, (2, *m.image_shape), dtype=torch.uint8).to(device)
    c8 = torch.randint(0, 256, (2, *m.label_shape), dtype=torch.uint8).to(device)
    torch.manual_seed(3)
    loss = JointBitsPerDim()(m, (x8, c8))
    torch.manual_seed(3)
    bpd_a, bpd_b = m.joint_bits_per_dim(x8, c8)
    torch.testing.assert_close(loss, bpd_b.mean() + 1e-4 * bpd_a.mean())
    torch.manual_seed(3)
    # bits/dim of the photo from its own definition: dequantise both, change of variables, −log 256 per dim
    u_x, u_c = (torch.rand(t.shape, dtype=torch.float64, device=device) for t in (x8, c8))  # model dtype
    lp = m.log_prob((x8 + u_x) / 256 - 0.5, (c8 + u_c) / 256 - 0.5)
    d = 400
    torch.testing.assert_close(bpd_b, -(lp - d * math.log(256)) / (d * math.log(2)))
    loss.backward()
    left = next(m.left.levels[0].layers[1].layers[2].net.conv1.parameters())
    right = next(m.levels[0].layers[1].layers[0].net.conv.parameters())
    assert left.grad.abs().sum() > 0 and right.grad.abs().sum() > 0


def test_sampling_follows_the_label_and_the_temperature(device):
    m, _, c = _ready(TINY, device=device)
    torch.manual_seed(0)
    s = m.sample(c, temperature=0.7)
    assert s.shape == (2, *m.image_shape) and torch.isfinite(s).all()
    twice = m.sample(c[:1].expand(2, -1, -1, -1), 1.0)  # one label, two independent draws
    assert (twice[0] - twice[1]).abs().max() > 1e-3
    zero = m.sample(c, 0.0)  # temperature 0: the prior means, decoded -- deterministic given the label
    torch.testing.assert_close(zero, m.sample(2, 0.0, cond=c))
    assert (zero - m.sample(-c, 0.0)).abs().max() > 1e-6
    c8 = torch.randint(0, 256, (2, *m.label_shape), dtype=torch.uint8).to(device)  # 8-bit labels: bin centres
    torch.testing.assert_close(m.sample(c8, 0.0), m.sample(((c8.double() + 0.5) / 256 - 0.5), 0.0))


def _count(cfg):
    """Built on the meta device: shapes only, no memory, about a second per 40 M parameters."""
    with torch.device("meta"):
        m = build_model({"family": "fullglow", **cfg})
    return m.num_parameters(), m.left.num_parameters()


@pytest.fixture(scope="module")
def table5_counts():
    return {"L4K16": _count({}), "L2K8": _count({"levels": 2, "steps": 8}),
            "imap": _count({"levels": 2, "steps": 8, "attention": "imap"}),
            "itrans": _count({"levels": 2, "steps": 8, "attention": "itrans", "heads": 1})}


def test_parameter_counts_match_table5_exactly(table5_counts):
    # L4 K16, 256×256, LU: the reference code's count (MoeinSorkhei/glow2); Table 5: 155.33 M
    assert table5_counts["L4K16"] == (155_335_008, 37_335_440)
    assert table5_counts["L2K8"][0] == 34_654_752


def test_cattnflow_parameter_counts_beside_the_paper(table5_counts):
    imap, itrans = table5_counts["imap"][0], table5_counts["itrans"][0]
    assert imap == 34_661_408 and itrans == 34_702_016  # ours, pinned
    assert abs(imap / 1e6 - 34.68) < 0.025  # paper: 34.68 M (ours 34.66 M)
    assert round(itrans / 1e6, 2) == 34.70  # paper: 34.70 M


def _closed_form(L, K, H, W, c0=3, cl=3, n=512, m=128):
    """Parameters of Full-Glow written out from the reference's module definitions (independent of our code)."""
    total, c, cleft, h, w = 0, c0, cl, H, W
    for b in range(L):
        C, Cl, h, w = 4 * c, 4 * cleft, h // 2, w // 2
        coupling = lambda cin, C: cin * n * 9 + n + n * n + n + C * n * 9 + 2 * C
        mlp = lambda out: 32 * 2 * (h - 4) * (w - 4) + 32 + 32 * 64 + 64 + 64 * 48 + 48 + 49 * out
        conv = lambda cc: 8 * cc + 8 + 292 + 74  # 1×1 cc→8, 3×3 8→4, 3×3 4→2
        left = 2 * Cl + 2 * Cl * Cl + Cl + coupling(Cl // 2, Cl)
        right = (conv(Cl) + mlp(2 * C)) + (conv(Cl) + mlp(2 * C * C + C)) + (m * Cl * 9 + m + C * m * 9 + C) \
            + coupling(C // 2 + C, C)
        prior = lambda C: 2 * C * C * 9 + 4 * C if b == L - 1 else C * (C // 2) * 9 + 2 * C
        total += K * (left + right) + prior(C) + prior(Cl)
        c, cleft = C // 2, Cl // 2
    return total


def test_parameter_count_closed_form(table5_counts):
    assert _closed_form(4, 16, 256, 256) == table5_counts["L4K16"][0]
    assert _closed_form(2, 8, 256, 256) == table5_counts["L2K8"][0]
    for L, K, H, W, cl in [(3, 2, 64, 96, 3), (2, 1, 40, 40, 34)]:  # other sizes, a one-hot label map
        cfg = {"levels": L, "steps": K, "image_shape": (3, H, W), "label_channels": cl}
        assert _closed_form(L, K, H, W, cl=cl) == _count(cfg)[0]


def test_bad_input_is_named(device):
    m, x, c = _ready(TINY, device=device)
    with pytest.raises(FlowError, match="different sizes"):
        m.log_prob(x, torch.zeros(2, 3, 24, 24, dtype=torch.float64, device=device))
    with pytest.raises(FlowError, match="34 for one-hot"):
        m.log_prob(x, torch.zeros(2, 34, 20, 20, dtype=torch.float64, device=device))
    with pytest.raises(FlowError, match="pass the label map"):
        m.log_prob(x)
    bad = c.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(FlowError, match="non-finite"):
        m.log_prob(x, bad)
    with pytest.raises(FlowError, match="non-finite"):
        m.sample(bad, 1.0)
    xb = x.clone()
    xb[1, 0, 3, 3] = float("inf")
    with pytest.raises(FlowError, match="non-finite"):
        m.log_prob(xb, c)
    with pytest.raises(FlowError, match="batch"):
        m.sample(3, 1.0, cond=c)
    with pytest.raises(FlowError, match="label map must lie in model space.*8-bit"):
        m.joint_bits_per_dim(torch.zeros(2, 1, 20, 20, dtype=torch.uint8, device=device), (c + 0.5) * 255)  # uint8 values as floats
    with pytest.raises(FlowError, match="label map must lie in model space"):
        m.sample((c + 0.5) * 255, 1.0)
    with pytest.raises(FlowError, match="5×5"):
        FullGlow({"image_shape": (3, 16, 16), "levels": 2})
    with pytest.raises(FlowError, match="unknown fullglow config"):
        FullGlow({"levles": 2})
