"""The attention bounds hold for every input and weight: dense Jacobians on small N, D never exceed them
(random, scaled, Kim's spread-out inputs, adversarial search, weights ×10), the L2 constant scales like ‖W_Q‖²,
and the vectorised layouts equal a per-token loop and commute with permutations of the positions. Windowed
attention: the same attacks against the bound with N_w tokens, no coupling across windows, each window equal
to the global attention on its own sub-map, a covering window equal to the global path bit for bit, and clear
errors for windows that do not tile the map."""
import math

import pytest
import torch

from attnflow_core.core.errors import FlowError
from attnflow_core.diagnostics.jacobian import dense_jacobian
from attnflow_core.diagnostics.lipschitz import adversarial_lipschitz
from attnflow_core.nn.acf import L2SelfAttention, LipschitzDotAttention
from attnflow_core.nn.lipschitz_attention import (
    KERNELS,
    lambert_w0,
    lipnorm_attention,
    lipnorm_attention_bound,
    resolve_window,
    untokens,
    window_tokens,
)

N, D = 5, 4


def _dense_norm(fn, x):
    return float(torch.linalg.matrix_norm(dense_jacobian(fn, x), ord=2))


def _inputs(seed, n=N):
    g = torch.Generator().manual_seed(seed)
    out = [s * torch.randn(1, n, D, generator=g, dtype=torch.float64) for s in (0.01, 0.3, 1.0, 3.0, 30.0)]
    spread = torch.zeros(1, n, D, dtype=torch.float64)  # Kim et al.'s bad case: one token at 0, others spread
    spread[0, 1:] = torch.linspace(0.5, 4.0, n - 1, dtype=torch.float64).unsqueeze(-1) * torch.randn(n - 1, D, generator=g, dtype=torch.float64)
    return out + [spread, torch.ones(1, n, D, dtype=torch.float64)]


@pytest.mark.parametrize("heads", [2])
def test_l2_attention_bound_holds(heads):
    torch.manual_seed(0)
    att = L2SelfAttention(D, heads=heads).double()
    for scale in (1.0, 10.0):
        with torch.no_grad():
            att.wq.mul_(scale)
        bound = float(att.raw_bound(N).detach())
        worst = max(_dense_norm(att.attend, x) for x in _inputs(int(scale)))
        adv, _ = adversarial_lipschitz(att.attend, _inputs(7)[3], steps=10)
        assert max(worst, adv) <= bound, (worst, adv, bound)


@pytest.mark.parametrize("kind", KERNELS)
def test_lipschitz_normalised_attention_bound_holds(kind):
    g = torch.Generator().manual_seed(1)
    wq, wk, wv = (torch.randn(D, D, generator=g, dtype=torch.float64) for _ in range(3))
    bq, bk = (torch.randn(D, generator=g, dtype=torch.float64) for _ in range(2))
    for scale in (1.0, 10.0):
        fn = lambda x: lipnorm_attention(x @ (scale * wq).T + bq, x @ wk.T + bk, x @ wv.T, 0.5, kind)
        nrm = lambda w: torch.linalg.matrix_norm(w, ord=2)
        bound = float(lipnorm_attention_bound(nrm(scale * wq), nrm(wk), nrm(wv), 0.5, kind))
        worst = max(_dense_norm(fn, x) for x in _inputs(2))
        adv, _ = adversarial_lipschitz(fn, _inputs(3)[2], steps=10)
        assert max(worst, adv) <= bound, (worst, adv, bound)


def test_l2_constant_scales_with_the_square_of_the_query_weight():
    torch.manual_seed(2)
    att = L2SelfAttention(D).double()
    x = torch.randn(1, N, D, dtype=torch.float64)
    b1, s1 = float(att.raw_bound(N).detach()), _dense_norm(att.attend, 2.0 * x)
    with torch.no_grad():
        att.wq.mul_(2.0)
    b2, s2 = float(att.raw_bound(N).detach()), _dense_norm(att.attend, x)
    assert s2 == pytest.approx(4.0 * s1, rel=1e-9)  # J_{2W}(X) = 4 J_W(2X): exactly t² (f_t(X) = t f_1(tX))
    assert b2 == pytest.approx(4.0 * b1, rel=1e-9)


def test_lambert_w():
    for z in (0.0, 0.1, 1.0, 63 / math.e, 1023 / math.e, 1e6):
        w = lambert_w0(z)
        assert w * math.exp(w) == pytest.approx(z, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("cls", [L2SelfAttention, LipschitzDotAttention])
def test_layout_matches_a_per_token_loop_and_commutes_with_permutations(cls, device):
    torch.manual_seed(3)
    att = cls(8).to(device, torch.float64)
    h = torch.randn(2, 8, 3, 4, dtype=torch.float64).to(device)
    y = att(h)
    perm = torch.randperm(12).to(device)
    yp = att(h.flatten(2)[:, :, perm].view_as(h))
    torch.testing.assert_close(yp.flatten(2), y.flatten(2)[:, :, perm])
    x = h.flatten(2).transpose(1, 2)  # tokens (B, N, D), built the slow way below
    beta = torch.sigmoid(att.gate)
    for b in range(2):
        toks = [h[b, :, i, j] for i in range(3) for j in range(4)]
        if cls is L2SelfAttention:
            w = att.wq[0]
            q = [t @ w for t in toks]
            out = []
            for qi in q:
                logits = torch.stack([-(qi - qj).square().sum() / math.sqrt(8) for qj in q])
                p = torch.softmax(logits, 0)
                f = sum(pj * (t @ w @ w.T / math.sqrt(8)) for pj, t in zip(p, toks))
                out.append((f @ att.wv[0]) @ att.wo)
        else:
            qs, ks, vs = att.q(x[b]), att.k(x[b]), att.v(x[b])
            m = max(qs.norm() * ks.norm(dim=1).max(), qs.norm() * vs.norm(dim=1).max(),
                    ks.norm(dim=1).max() * vs.norm(dim=1).max())
            out = [sum(torch.softmax(torch.stack([att.scale * (qi @ kj) / m for kj in ks]), 0)[j] * vs[j]
                       for j in range(12)) for qi in qs]
        slow = (1 - beta) * x[b] + beta * torch.stack(out) / att.raw_bound(12)
        torch.testing.assert_close(y[b].flatten(1).T, slow, rtol=1e-9, atol=1e-10)


MAP, WIN = (2, 4), (2, 2)  # two 2×2 windows: N = 8 tokens, N_w = 4 per window


def _map_inputs(seed):
    like = torch.empty(1, D, *MAP, dtype=torch.float64)
    maps = [untokens(x, like) for x in _inputs(seed, n=8)]
    spread = torch.zeros_like(like)  # Kim's bad case inside one window: a token at 0, its window spread out
    spread[0, :, :, :2] = 3.0 * torch.randn(D, 2, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    spread[0, :, 0, 0] = 0.0
    return maps + [spread]


def _windowed(att):
    """The windowed map ``F_win`` (no gate) on ``(1, D, H, W)`` maps, as the forward pass computes it."""
    return lambda h: att.attend_map(h)[0]


@pytest.mark.parametrize("cls", [L2SelfAttention, LipschitzDotAttention])
def test_windowed_attention_bound_holds_with_the_window_token_count(cls):
    torch.manual_seed(4)
    att = (cls(D, heads=2, window=WIN) if cls is L2SelfAttention else cls(D, qk_channels=2, window=WIN)).double()
    fn = _windowed(att)
    for scale in (1.0, 10.0):
        with torch.no_grad():
            for p in att.parameters():
                p.mul_(scale if p.dim() > 1 else 1.0)
        bound = float(att.raw_bound(4).detach())
        if cls is L2SelfAttention:  # κ(N_w) < κ(N): the certificate is tighter than the global one
            assert bound < 0.6 * float(att.raw_bound(8).detach())
        worst = max(_dense_norm(fn, h) for h in _map_inputs(int(scale)))
        adv, _ = adversarial_lipschitz(fn, _map_inputs(9)[3], steps=10)
        assert max(worst, adv) <= bound, (worst, adv, bound)


def test_the_windows_fast_l2_form_equals_the_reference_form():
    """Folded projections and fused logits: the same map as :meth:`attend` (the global path), to rounding."""
    torch.manual_seed(8)
    att = L2SelfAttention(D, heads=2).double()
    for scale in (0.1, 1.0, 30.0):
        x = scale * torch.randn(6, 9, D, dtype=torch.float64)
        ref = att.attend(x).detach()
        torch.testing.assert_close(att.attend_windows(x).detach(), ref, rtol=0, atol=1e-12 * float(ref.abs().max()))
    toks = window_tokens(torch.randn(2, D, 4, 6, dtype=torch.float64), (2, 3))
    assert toks.shape == (8, 6, D)


def test_windows_do_not_interact_and_each_equals_the_global_attention_on_its_sub_map():
    torch.manual_seed(5)
    win_att = L2SelfAttention(D, heads=2, window=WIN).double()
    glob = L2SelfAttention(D, heads=2).double()
    glob.load_state_dict(win_att.state_dict())
    h = _map_inputs(6)[2]
    assert win_att.attend_map(h)[1] == 4
    jac = dense_jacobian(_windowed(win_att), h).view(D, *MAP, D, *MAP)
    assert float(jac[:, :, :2][..., 2:].abs().max()) == 0.0 and float(jac[:, :, 2:][..., :2].abs().max()) == 0.0
    hb = torch.randn(3, D, 4, 6, dtype=torch.float64)  # 2×3 windows, gate and bound included
    y = win_att(hb)
    for i in (0, 2):
        for j in (0, 2, 4):
            torch.testing.assert_close(y[..., i:i + 2, j:j + 2], glob(hb[..., i:i + 2, j:j + 2]), rtol=1e-12, atol=1e-13)
    # permuting positions inside a window permutes the output alike
    perm = hb.clone()
    perm[..., 0:2, 0:2] = hb[..., 0:2, 0:2].flip(-1).transpose(-1, -2)
    torch.testing.assert_close(win_att(perm)[..., 0:2, 0:2], y[..., 0:2, 0:2].flip(-1).transpose(-1, -2))


@pytest.mark.parametrize("cls", [L2SelfAttention, LipschitzDotAttention])
def test_a_window_covering_the_map_is_the_global_attention_bit_for_bit(cls, device, dtype):
    torch.manual_seed(7)
    glob, covering = cls(8).to(device, dtype), cls(8, window=(3, 16)).to(device, dtype)
    covering.load_state_dict(glob.state_dict())
    h = torch.randn(2, 8, 3, 4).to(device, dtype)
    assert torch.equal(covering(h), glob(h))
    assert resolve_window(7, (7, 7)) is None and resolve_window(7, (28, 14)) == (7, 7) and resolve_window((2, 8), (4, 4)) == (2, 4)


def test_windows_that_do_not_tile_the_map_are_refused():
    att = L2SelfAttention(8, window=3)
    with pytest.raises(FlowError, match=r"3×3 attention window does not tile the 4×6 map"):
        att(torch.randn(1, 8, 4, 6))
    for bad in (0, -2, 2.5, True, (2, 2, 2)):
        with pytest.raises(FlowError, match="positive int or a pair"):
            L2SelfAttention(8, window=bad)
