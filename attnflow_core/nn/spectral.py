r"""Spectral norms of linear layers and zero-padded convolutions: power-iteration estimates (a *lower*
bound) and certified *upper* bounds.

**Power iteration** (what Residual Flows and i-ResNet use): with unit vectors ``u, v``,
``u ← W v / ‖W v‖``, ``v ← Wᵀ u / ‖Wᵀ u‖`` and :math:`\hat\sigma = u^\top W v`. For any unit ``u, v``,
:math:`\hat\sigma \le \sigma_{\max}(W)`: the estimate can only be too small, so a layer normalised by
it can exceed its target norm. For a k×k convolution ``W`` is the whole zero-padded convolution at the
real input size (``conv2d`` forward, ``conv_transpose2d`` for the adjoint), not the kernel matrix.

**Certified upper bound for a zero-padded convolution** (:func:`conv_norm_upper_bound`). Let the conv
have stride 1, padding ``p`` (per side), kernel ``k_h × k_w`` (``k ≤ 2p + 1``) and input ``H × W``; the
output is ``H' × W'`` with ``H' = H + 2p_h − k_h + 1``. Put the input on an ``N_h × N_w`` grid with
``N_h ≥ H + p_h`` at offset ``p_h`` (zeros elsewhere): an isometry ``E``. The *circular* cross-correlation
``C_N`` on that grid, at output row ``0 ≤ i < H'``, reads rows ``q = i … i + k_h − 1 ≤ H + 2p_h − 1``; rows
``q < N_h`` are read as they are, and rows ``q ≥ N_h`` wrap to ``q − N_h < H + 2p_h − N_h ≤ p_h``, which
hold zeros, exactly like the zero padding at ``q`` in the padded input. So the zero-padded conv equals
``C_N`` on those outputs: ``conv = P C_N E`` with ``P`` the restriction to the ``H' × W'`` outputs
(``‖P‖ ≤ 1``), and

.. math:: \|\mathrm{conv}\|_2 \le \min_{N} \|C_N\|_2,\qquad
          \|C_N\|_2 = \max_{\omega} \sigma_{\max}\big(\hat K_N(\omega)\big),

where the 2-D DFT block-diagonalises ``C_N`` (Sedghi, Gupta & Long, ICLR 2019, Thm. 6) and
:math:`\hat K_N(\omega) = \sum_{a,b} W_{:,:,a,b}\, e^{-2\pi i (a\omega_h/N_h + b\omega_w/N_w)}` is a
``C_out × C_in`` matrix per frequency; every ``N_h ∈ [H + p_h, H + 2p_h]`` (and the same for ``N_w``) gives a
valid bound and none is uniformly the smallest: the layers use the smallest grid (fewest frequencies),
``exhaustive=True`` takes the minimum over all of them. For a real kernel
:math:`\hat K(-\omega) = \overline{\hat K(\omega)}` has the same singular values, so the half spectrum of
``rfft2`` suffices. Everything is computed in float64 and multiplied by ``1 + 1e-9`` to cover the rounding
of the eigen-solver (relative error ``O(C·ε_64)``).

**Input size.** For inputs smaller than the declared ``H × W`` the zero-padded operator is a
restriction of the declared one (embed the small input in the large grid, restrict the output), so its
norm is not larger: a bound for the declared size holds for every smaller input. Larger inputs are refused
by the layers (:mod:`attnflow_core.nn.lipschitz`), which fixes the public code's frozen-size pitfall (P8).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CERT_MARGIN = 1.0 + 1e-9


def _unit(t: Tensor) -> Tensor:
    return t / t.norm().clamp_min(1e-30)


@torch.no_grad()
def power_iteration(apply: callable, adjoint: callable, u: Tensor, v: Tensor, max_iter: int, tol: float
                    ) -> tuple[Tensor, Tensor, int]:
    """Power iteration on ``WᵀW`` from unit ``v``: stops when the estimate ``σ̂ = ‖W v‖`` changes by at most
    ``tol·σ̂`` between rounds, or after ``max_iter`` rounds. Returns ``(u, v, rounds)``. (The estimate converges
    much faster than the vectors when the top singular values are close; the certified gap of the layers
    makes the remaining shortfall harmless.)"""
    rounds, prev = 0, -1.0
    for rounds in range(1, max_iter + 1):
        wv = apply(v)
        sigma = float(wv.norm())
        u = _unit(wv)
        v = _unit(adjoint(u))
        if abs(sigma - prev) <= tol * sigma:
            break
        prev = sigma
    return u, v, rounds


def conv_ops(weight: Tensor, padding: tuple[int, int]) -> tuple[callable, callable]:
    """The zero-padded convolution (stride 1) and its adjoint, as functions of one ``(1, C, H, W)`` vector."""
    return (lambda v: F.conv2d(v, weight, padding=padding),
            lambda u: F.conv_transpose2d(u, weight, padding=padding))


@torch.no_grad()
def matrix_norm_upper_bound(weight: Tensor) -> float:
    """``σ_max`` of a ``(out, in)`` matrix (or 1×1 conv weight), float64 SVD, times the rounding margin."""
    w = weight.detach().double().reshape(weight.shape[0], -1)
    return float(torch.linalg.matrix_norm(w, ord=2)) * CERT_MARGIN


@torch.no_grad()
def circular_conv_norm(weight: Tensor, grid: tuple[int, int]) -> float:
    """Exact operator 2-norm of the circular (periodic) cross-correlation with ``weight`` on a ``grid`` torus."""
    c_out, c_in = weight.shape[:2]
    spec = torch.fft.rfft2(weight.detach().double(), s=grid)  # (C_out, C_in, N_h, N_w//2+1)
    if c_in <= c_out:  # the smaller Gram matrix per frequency: same non-zero spectrum
        gram = torch.einsum("oihw,ojhw->hwij", spec.conj(), spec)
    else:
        gram = torch.einsum("iohw,johw->hwij", spec, spec.conj())
    top = torch.linalg.eigvalsh(gram.reshape(-1, *gram.shape[-2:]))[..., -1]
    return float(top.clamp_min(0.0).max().sqrt())


@torch.no_grad()
def conv_norm_upper_bound(weight: Tensor, input_size: tuple[int, int], padding: tuple[int, int],
                          exhaustive: bool = False) -> float:
    """Certified upper bound of the operator 2-norm of the zero-padded, stride-1 convolution with ``weight``
    ``(C_out, C_in, k_h, k_w)`` on ``input_size`` inputs: the circular-convolution norm on the smallest valid
    grid ``(H + p_h, W + p_w)``, or (``exhaustive``) the smallest over all grids up to ``(H + 2p_h, W + 2p_w)``
    (module docstring has the proof)."""
    kh, kw = weight.shape[2:]
    (h, w), (ph, pw) = input_size, padding
    if kh > 2 * ph + 1 or kw > 2 * pw + 1:
        raise ValueError(f"the bound needs kernel <= 2*padding + 1, got kernel {kh}×{kw}, padding {padding}")
    hs = range(max(h + ph, kh), h + 2 * ph + 1) if exhaustive else [max(h + ph, kh)]
    ws = range(max(w + pw, kw), w + 2 * pw + 1) if exhaustive else [max(w + pw, kw)]
    return min(circular_conv_norm(weight, (nh, nw)) for nh in hs for nw in ws) * CERT_MARGIN
