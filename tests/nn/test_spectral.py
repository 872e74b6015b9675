"""The conv certificate: exact Gram matrix, an upper bound always, within 1 % of the true norm where the
operator is small (the circular bound alone is up to 12 % above it on 4×4 maps). The true norm is the SVD
of the dense float64 zero-padded operator."""
import pytest
import torch

from attnflow_core.diagnostics.lipschitz import conv_matrix
from attnflow_core.nn.lipschitz import SpectralConv2d
from attnflow_core.nn.spectral import (
    DENSE_MAX_CPU,
    EIG_MAX,
    conv_gram,
    conv_norm_upper_bound,
    dense_conv_norm_upper_bound,
    dense_side,
)


def _true(weight, size, k):
    return float(torch.linalg.matrix_norm(conv_matrix(weight, size, k // 2), ord=2))


def _adversarial(cout, cin, k, g):
    """Kernels that are hard for one bound or another: flat spectra, shifts, constants, checkerboards, rank one."""
    eye = torch.zeros(cout, cin, k, k, dtype=torch.float64)
    for i in range(min(cout, cin)):
        eye[i, i, k // 2, k // 2] = 1.0  # identity: every singular value equal
    shift = torch.zeros_like(eye)
    for i in range(min(cout, cin)):
        shift[i, i, 0, k - 1] = 1.0  # a corner tap: a partial shift, half its rows cut by the border
    const = torch.ones(cout, cin, k, k, dtype=torch.float64)
    sign = torch.tensor([[(-1.0) ** (a + b) for b in range(k)] for a in range(k)], dtype=torch.float64)
    checker = sign.expand(cout, cin, k, k).clone()
    r1 = (torch.randn(cout, 1, 1, 1, generator=g, dtype=torch.float64)
          * torch.randn(1, cin, k, k, generator=g, dtype=torch.float64))
    return {"identity": eye, "corner_shift": shift, "constant": const, "checkerboard": checker, "rank_one": r1}


def test_gram_matrix_is_the_dense_operators():
    g = torch.Generator().manual_seed(0)
    for cout, cin, k, size in [(5, 2, 3, (4, 3)), (2, 5, 3, (3, 5)), (3, 3, 5, (2, 6)), (4, 2, 3, (1, 1))]:
        w = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)
        d = conv_matrix(w, size, k // 2)
        ref = d.T @ d if cin <= cout else d @ d.T
        gram = conv_gram(w, size, (k // 2, k // 2))
        assert gram.shape == ref.shape
        # the same operator up to a permutation of coordinates: equal spectra
        torch.testing.assert_close(torch.linalg.eigvalsh(gram), torch.linalg.eigvalsh(ref), rtol=0, atol=1e-11)


@pytest.mark.parametrize("scale", [1.0, 10.0, 100.0])
def test_certificate_is_within_one_percent_on_small_operators_and_never_below(scale):
    g = torch.Generator().manual_seed(1)
    ratios = []
    for cout, cin, k, size in [(8, 3, 3, (4, 4)), (3, 8, 3, (4, 4)), (16, 12, 3, (4, 4)), (4, 4, 5, (3, 5)),
                               (6, 2, 3, (8, 8)), (2, 2, 3, (2, 2)),
                               (8, 8, 3, (7, 7)), (30, 32, 3, (4, 4))]:  # orders 392, 480: the Cholesky path
        kernels = {"gaussian": torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64),
                   **_adversarial(cout, cin, k, g)}
        for name, w in kernels.items():
            w = w * scale
            assert dense_side(w, size) <= DENSE_MAX_CPU
            ratio = conv_norm_upper_bound(w, size, (k // 2, k // 2)) / _true(w, size, k)
            assert 1.0 <= ratio <= 1.01, (name, cout, cin, size, ratio)
            ratios.append(ratio)
    assert max(ratios) < 1.006


def test_large_operators_keep_the_circular_bound_which_is_still_an_upper_bound():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    size = (24, 24)  # smaller side 2·576 = 1152 > the CPU limit
    assert dense_side(w, size) > DENSE_MAX_CPU
    circ = conv_norm_upper_bound(w, size, (1, 1), dense_max=0)
    assert conv_norm_upper_bound(w, size, (1, 1)) == circ
    assert circ >= _true(w, size, 3)


def test_a_normalised_layer_on_4x4_maps_uses_nearly_all_of_its_target():
    torch.manual_seed(3)
    conv = SpectralConv2d(12, 32, 3, (4, 4), coeff=0.98).double()
    with torch.no_grad():
        conv.weight.mul_(10.0)
    conv.refresh(max_iter=500, tol=1e-8)
    used = _true(conv.normalized_weight().detach(), (4, 4), 3)
    assert 0.98 / 1.01 <= used <= 0.98 * (1 + 1e-9)  # the circular bound alone leaves ≈ 0.88
    assert used <= conv.lipschitz_bound() <= used * 1.01


def test_the_cholesky_path_warm_started_from_the_layers_vectors_is_tight_and_an_upper_bound():
    torch.manual_seed(4)
    conv = SpectralConv2d(8, 16, 3, (7, 7)).double()  # order 8·49 = 392 > EIG_MAX
    assert dense_side(conv.weight, (7, 7)) > EIG_MAX
    conv.refresh(max_iter=5)  # the training refresh: a rough σ̂ and its vectors
    true = _true(conv.weight.detach(), (7, 7), 3)
    for vectors in [(conv.u, conv.v), None]:
        cert = dense_conv_norm_upper_bound(conv.weight, (7, 7), (1, 1), float(conv.sigma_hat), vectors)
        assert true <= cert <= true * 1.005
