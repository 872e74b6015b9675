"""iTrans beyond the generic contract: invertible for every input and weight, Eq. 9, patching, masks."""
import pytest
import torch

from attnflow_core import FlowError, ITrans
from attnflow_core.attention.masks import MASK_KINDS, make_mask
from attnflow_core.testing import jacobian_logdets, perturb_


@pytest.mark.parametrize("mask", MASK_KINDS)
@pytest.mark.parametrize("heads", [1, 5])
def test_itrans_invertible_with_weights_scaled_100x(mask, heads):
    layer = ITrans(4, heads=heads, patches=4, mask=mask).double()
    perturb_(layer, 0.5)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(100.0)
    x = 10 * torch.randn(8, 4, 8, 8, dtype=torch.float64)
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



def test_itrans_random_inputs_never_singular():
    layer = ITrans(6, heads=3, patches=4).double()
    perturb_(layer, 3.0)
    for _ in range(20):
        x = torch.randn(16, 6, 4, 4, dtype=torch.float64) * torch.exp(3 * torch.randn(1)).item()
        _, logdet = layer(x)
        assert torch.isfinite(logdet).all()



def test_itrans_logdet_counts_unmasked_features_per_patch():
    # closed form Eq. 9: n_u · log det W, with n_u = (C·hp·wp)/2 for the even checkerboard
    layer = ITrans(4, heads=2, patches=4).double()
    perturb_(layer)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
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



def test_itrans_refuses_mask_that_differs_between_patches():
    full = make_mask("checkerboard", 4, 2, 2)  # 1×1 patches: alternate between patches
    layer = ITrans(4, patches=4, mask=full)
    with pytest.raises(FlowError, match="same mask in every patch"):
        layer(torch.randn(1, 4, 2, 2))
    ok = make_mask("checkerboard", 4, 4, 4)  # 2×2 patches of a global checkerboard: same in each
    ITrans(4, patches=4, mask=ok)(torch.randn(1, 4, 4, 4))



def test_named_checkerboard_matches_global_pattern_when_patch_sides_even():
    layer = ITrans(4, patches=4)
    m = layer.patch_mask(8, 8, torch.zeros(1))
    tiled = layer._from_patches(m.view(1, 1, -1).expand(1, 4, -1), 4, 8, 8)[0]
    torch.testing.assert_close(tiled, make_mask("checkerboard", 4, 8, 8))
