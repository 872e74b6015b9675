"""iTrans beyond the generic contract: invertible for every input and weight, Eq. 9, patching, masks,
the patch-grid rule (``patches="auto"``) and the faster code path against the previous one."""
import math

import pytest
import torch
import torch.nn.functional as F

from attnflow_core import FlowError, ITrans
from attnflow_core.attention import parse_patches, resolve_patches
from attnflow_core.attention.masks import MASK_KINDS, make_mask
from attnflow_core.testing import jacobian_logdets, perturb_


@pytest.mark.parametrize("mask", MASK_KINDS)
@pytest.mark.parametrize("heads", [1, 5])
def test_itrans_invertible_with_weights_scaled_100x(mask, heads, device):
    layer = ITrans(4, heads=heads, patches=4, mask=mask).to(device, torch.float64)
    perturb_(layer, 0.5)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(100.0)
    x = 10 * torch.randn(8, 4, 8, 8, dtype=torch.float64).to(device)
    y, logdet = layer(x)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    m = layer.patch_mask(8, 8, x)
    w = layer.attention_matrix(layer._from_patches(layer._to_patches(x) * m, 4, 8, 8))
    diag = torch.diagonal(w, dim1=-2, dim2=-1)
    off = w.abs().sum(-1) - diag.abs()
    assert (diag - off > 0).all(), "W must stay strictly diagonally dominant"
    assert (torch.linalg.det(w) > 0).all()
    xr = layer.inverse(y)
    assert (xr - x).abs().max() < 1e-8 * x.abs().max()
    torch.testing.assert_close(logdet[:1], jacobian_logdets(lambda t: layer(t)[0], x[:1]), rtol=1e-6, atol=1e-6)



def test_itrans_random_inputs_never_singular(device):
    layer = ITrans(6, heads=3, patches=4).to(device, torch.float64)
    perturb_(layer, 3.0)
    for _ in range(20):
        x = torch.randn(16, 6, 4, 4, dtype=torch.float64).to(device) * torch.exp(3 * torch.randn(1)).item()
        _, logdet = layer(x)
        assert torch.isfinite(logdet).all()



def test_itrans_logdet_counts_unmasked_features_per_patch(device):
    # closed form Eq. 9: n_u · log det W, with n_u = (C·hp·wp)/2 for the even checkerboard
    layer = ITrans(4, heads=2, patches=4).to(device, torch.float64)
    perturb_(layer)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64).to(device)
    _, logdet = layer(x)
    m = layer.patch_mask(8, 8, x)
    assert int((1 - m).sum()) == 4 * 4 * 4 // 2
    w = layer.attention_matrix(layer._from_patches(layer._to_patches(x) * m, 4, 8, 8))
    torch.testing.assert_close(logdet, 32 * torch.log(torch.linalg.det(w)))



def test_itrans_refuses_shapes_patching_cannot_divide():
    layer = ITrans(4, patches=4)
    with pytest.raises(FlowError, match="grid"):
        layer(torch.randn(1, 4, 5, 4))
    with pytest.raises(FlowError, match="square"):
        ITrans(4, patches=3)



def test_itrans_refuses_mask_that_differs_between_patches(device, dtype):
    full = make_mask("checkerboard", 4, 2, 2)  # 1×1 patches: alternate between patches
    layer = ITrans(4, patches=4, mask=full).to(device, dtype)
    with pytest.raises(FlowError, match="same mask in every patch"):
        layer(torch.randn(1, 4, 2, 2).to(device, dtype))
    ok = make_mask("checkerboard", 4, 4, 4)  # 2×2 patches of a global checkerboard: same in each
    y, _ = ITrans(4, patches=4, mask=ok).to(device, dtype)(torch.randn(1, 4, 4, 4).to(device, dtype))
    assert y.dtype == dtype and bool(torch.isfinite(y).all())



def test_named_checkerboard_matches_global_pattern_when_patch_sides_even():
    layer = ITrans(4, patches=4)
    m = layer.patch_mask(8, 8, torch.zeros(1))
    tiled = layer._from_patches(m.view(1, 1, -1).expand(1, 4, -1), 4, 8, 8)[0]
    torch.testing.assert_close(tiled, make_mask("checkerboard", 4, 8, 8))


# -- the patch grid: resolve_patches and patches="auto" ---------------------------------------------
@pytest.mark.parametrize("requested, h, w, grid", [
    ("auto", 14, 14, (2, 2)), ("auto", 7, 7, (1, 1)), ("auto", 8, 6, (2, 2)), ("auto", 9, 6, (1, 1)),
    ("auto:9", 12, 12, (3, 3)), ("auto:9", 14, 14, (2, 2)), ("auto:16", 28, 28, (4, 4)), ("auto:16", 6, 6, (3, 3)),
    (4, 14, 14, (2, 2)), (49, 7, 7, (7, 7)), ((2, 1), 4, 3, (2, 1)), ("auto:1", 5, 5, (1, 1)),
])
def test_resolve_patches_rule(requested, h, w, grid):
    assert resolve_patches(requested, h, w) == grid


@pytest.mark.parametrize("requested, match", [
    (3, "not a positive square"), (0, "not a positive square"), ("auto:5", "not a positive square"),
    ("four", "not a patch count"), ("auto:", "not a patch count"), (True, "must be an int"), (4.0, "must be an int"),
    ((2, 0), "positive"), ((2, 2, 2), "two integers"),
])
def test_parse_patches_refuses_bad_requests(requested, match):
    with pytest.raises(FlowError, match=match):
        parse_patches(requested)


def test_exact_grid_that_does_not_divide_names_the_map_and_auto():
    with pytest.raises(FlowError, match=r"7×7 map into a 2×2 grid.*'auto'"):
        resolve_patches(4, 7, 7)
    with pytest.raises(FlowError, match="7×7 map"):
        ITrans(8, patches=4, size=(7, 7))  # fails at build time, not at the first forward


def test_auto_grid_is_fixed_at_build_time_and_shown():
    with pytest.raises(FlowError, match="pass size"):
        ITrans(4, patches="auto")
    layer = ITrans(8, heads=1, patches="auto", size=(7, 7))
    assert layer.grid == (1, 1)
    assert "grid=1×1 (patches='auto' on 7×7)" in repr(layer)
    assert ITrans(4, patches="auto", size=(14, 14)).grid == (2, 2)
    assert "grid=2×2 (patches=4)" in repr(ITrans(4))


def test_one_patch_grid_is_the_scale_one_plus_gamma(device):
    # a 1×1 grid: A = softmax of one score = 1, so W = 1 + γ and the log-det is n_u · log(1 + γ)
    layer = ITrans(8, heads=1, patches="auto", size=(7, 7)).to(device, torch.float64)
    perturb_(layer, 0.5)
    x = torch.randn(3, 8, 7, 7, dtype=torch.float64).to(device)
    y, logdet = layer(x)
    m = make_mask("checkerboard", 8, 7, 7).to(device, torch.float64)
    scale = 1 + 1 + 1e-3 + torch.nn.functional.softplus(layer.gamma)
    torch.testing.assert_close(y, x * m + scale * x * (1 - m), rtol=0, atol=0)
    torch.testing.assert_close(logdet, (1 - m).sum() * torch.log(scale).expand(3))
    torch.testing.assert_close(logdet[:1], jacobian_logdets(lambda t: layer(t)[0], x[:1]), rtol=1e-10, atol=1e-10)
    assert (layer.inverse(y) - x).abs().max() < 1e-12


# -- the faster code path reproduces the previous one (a private copy of it, from f08d647) ----------------
def _old_attention_matrix(layer, x1, cond=None):
    inp = x1 if cond is None or layer.cond_channels == 0 else torch.cat([x1, cond], dim=1)
    b = x1.shape[0]
    q = layer._to_patches(layer.query(inp))
    k = layer._to_patches(layer.key(inp))
    n = q.shape[1]
    q = q.view(b, n, layer.heads, -1).transpose(1, 2)
    k = k.view(b, n, layer.heads, -1).transpose(1, 2)
    d = q.shape[-1]
    temp = F.softplus(layer.temperature) + 1e-3
    scores = q @ k.transpose(-1, -2) / (temp * math.sqrt(d))
    a = torch.softmax(scores, dim=-1).mean(dim=1)
    gamma = 1.0 + 1e-3 + F.softplus(layer.gamma)
    return a + gamma * torch.eye(n, dtype=a.dtype, device=a.device)


def _old_split(layer, t, cond):
    _, c, h, w = t.shape
    m = layer.patch_mask(h, w, t)
    tp = layer._to_patches(t)
    t1p = tp * m
    return tp, m, t1p, _old_attention_matrix(layer, layer._from_patches(t1p, c, h, w), cond)


def _old_forward(layer, x, cond=None):
    xp, m, x1p, wmat = _old_split(layer, x, cond)
    yp = x1p + wmat @ (xp * (1 - m))
    return layer._from_patches(yp, *x.shape[1:]), (1 - m).sum() * torch.linalg.slogdet(wmat).logabsdet


def _old_inverse(layer, y, cond=None):
    yp, m, x1p, wmat = _old_split(layer, y, cond)
    return layer._from_patches(x1p + torch.linalg.solve(wmat, yp * (1 - m)), *y.shape[1:])


def _run(fwd, layer, x, cond):
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    y, logdet = fwd(layer, x, cond)
    (y.sin().sum() + (logdet * torch.arange(1.0, len(logdet) + 1, dtype=x.dtype)).sum()).backward()
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in layer.named_parameters()}
    return y.detach(), logdet.detach(), x.grad, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kw, shape", [
    (dict(channels=4, heads=1, patches=4), (32, 4, 14, 14)),          # Glow L2 on MNIST, level 1
    (dict(channels=12, heads=5, patches=4), (8, 12, 4, 4)),           # the smoke tables' iTrans
    (dict(channels=3, heads=3, patches=9, mask="random"), (4, 3, 6, 6)),
    (dict(channels=4, heads=2, patches=(4, 2), mask="spatial"), (4, 4, 8, 4)),
    (dict(channels=4, heads=2, patches=4, cond_channels=2, mask="channel"), (4, 4, 4, 4)),
    (dict(channels=8, heads=1, patches=1), (32, 8, 7, 7)),            # a 1×1 grid (Glow L2 on MNIST, level 2)
])
def test_fast_path_reproduces_the_previous_code(kw, shape, dtype, device):
    torch.manual_seed(0)
    layer = ITrans(**kw).to(device, dtype)
    perturb_(layer, 0.5)
    x = 3 * torch.randn(shape, dtype=dtype).to(device)
    cond = torch.randn(shape[0], 2, *shape[2:], dtype=dtype).to(device) if kw.get("cond_channels") else None
    y0, ld0, gx0, g0 = _run(_old_forward, layer, x, cond)
    y1, ld1, gx1, g1 = _run(lambda m, t, c: m(t, c), layer, x, cond)
    assert torch.equal(y0, y1) and torch.equal(ld0, ld1) and torch.equal(gx0, gx1)
    with torch.no_grad():
        assert torch.equal(_old_inverse(layer, y0, cond), layer.inverse(y0, cond))
    for name in g0:
        if layer.grid == (1, 1) and name == "gamma":  # a sum over the map taken in another order
            torch.testing.assert_close(g1[name], g0[name], rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)
        else:
            assert torch.equal(g0[name], g1[name]), name
