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

**Exact certificate for small operators** (:func:`dense_conv_norm_upper_bound`, used when the smaller
side ``n = min(C_in, C_out)·H·W`` is at most :data:`DENSE_MAX`). The circular bound ignores the borders, so
on small maps it is loose (up to ≈12 % on 4×4). With ``T_a`` the 0/1 matrix of output row ``i`` reading input
row ``i + a − p_h`` (zero outside), the zero-padded conv is :math:`D = \sum_{a,b} T_a \otimes T_b \otimes W_{:,:,a,b}`,
so its Gram matrix on the smaller side is, exactly,

.. math:: G = \sum_{a,b,a',b'} (T_a^\top T_{a'}) \otimes (T_b^\top T_{b'}) \otimes (W_{ab}^\top W_{a'b'})
          \quad(\text{or } D D^\top \text{ with } T_a^\top, W_{ab}^\top),\qquad \|D\|_2^2 = \lambda_{\max}(G),

built without the dense ``D``. Up to order :data:`EIG_MAX`, ``eigvalsh(G)`` gives ``λ_max`` (backward stable:
exact for ``G + E``, ``‖E‖ ≲ p(n)·u·‖G‖``; a margin ``(2n(n+1) + n)·u`` is added). Beyond, a power iteration on
``G`` (warm-started from the layer's ``v`` or ``u``) gives ``ρ ≤ λ_max``; then ``τ = ρ(1 + δ)`` for
``δ = 8n²u, 10⁻¹⁰, 10⁻⁹, …, 10⁻²`` (from the first one the iteration's residual makes plausible, then two
bisection steps) until the Cholesky factorisation of ``τI − G`` succeeds, which proves ``τI − G ⪰ 0`` up to
rounding (else ``eigvalsh``). Rounding (Higham, *Accuracy and Stability*, Thms 10.5 and 3.5): a completed
Cholesky of ``A`` is exact for ``A + E``, ``‖E‖₂ ≤ 2n(n+1)u‖A‖₂`` with ``‖A‖₂ ≤ τ``; the computed ``G``
differs from the exact one by at most ``γ_m‖D‖_F² ≤ γ_m·H·W·‖W‖_F²`` (``m`` products per entry); both are
added. The result is an upper bound within a factor ``√(1 + 10⁻²) < 1.005`` of the true norm, and
:func:`conv_norm_upper_bound` takes the smaller of it and the circular bound. Cost: ``O(k²n²)`` to build ``G``
plus one ``eigvalsh`` or a few ``n³/3`` Choleskys, so it is skipped where the circular bound is already within
:data:`TIGHT` of ``σ̂`` (a lower bound of the true norm; large maps), and used up to :data:`DENSE_MAX_CPU` on
the CPU, :data:`DENSE_MAX` on a GPU.

**Input size.** For inputs smaller than the declared ``H × W`` the zero-padded operator is a
restriction of the declared one (embed the small input in the large grid, restrict the output), so its
norm is not larger: a bound for the declared size holds for every smaller input. Larger inputs are refused
by the layers (:mod:`attnflow_core.nn.lipschitz`), which fixes the public code's frozen-size pitfall.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

CERT_MARGIN = 1.0 + 1e-9
DENSE_MAX = 4096  # largest smaller side min(C_in, C_out)·H·W certified through the exact Gram matrix (GPU)
DENSE_MAX_CPU = 512  # on the CPU (float64 on one core: eigvalsh of order 192 ≈ 1 ms, Cholesky of 768 ≈ 15 ms, 4096 ≈ 2 s)
EIG_MAX = 384  # up to this order eigvalsh (≈1 ms at 192) is cheaper than a power iteration and Choleskys
TIGHT = 1.008  # a circular bound within this factor of σ̂ is kept (it is then within it of the true norm)
_U64 = 2.0 ** -53


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


@functools.lru_cache(maxsize=64)
def _shifts(k: int, n: int, p: int) -> Tensor:
    """``(k, n_out, n)``: ``T_a[i, q] = 1`` iff output ``i`` reads input ``q = i + a − p`` (inside the map)."""
    n_out = n + 2 * p - k + 1
    t = torch.zeros(k, n_out, n, dtype=torch.float64)
    for a in range(k):
        for i in range(n_out):
            if 0 <= i + a - p < n:
                t[a, i, i + a - p] = 1.0
    return t


@torch.no_grad()
def conv_gram(weight: Tensor, input_size: tuple[int, int], padding: tuple[int, int]) -> Tensor:
    """The exact float64 Gram matrix (``DᵀD`` or ``DDᵀ``, the smaller one) of the zero-padded conv ``D``."""
    w = weight.detach().double()
    (h, wd), (ph, pw) = input_size, padding
    th, tw = _shifts(w.shape[2], h, ph), _shifts(w.shape[3], wd, pw)
    blocks = w.permute(2, 3, 0, 1)  # (k_h, k_w, C_out, C_in): W_ab
    if w.shape[0] < w.shape[1]:  # the output side is smaller: D Dᵀ = (Dᵀ)ᵀ Dᵀ
        th, tw, blocks = th.transpose(1, 2), tw.transpose(1, 2), blocks.transpose(2, 3)
    a_h = torch.einsum("aiq,ciy->acqy", th, th)  # T_aᵀ T_c, (k, k, n, n)
    a_w = torch.einsum("bir,dis->bdrs", tw, tw)
    m = torch.einsum("abox,cdoy->abcdxy", blocks, blocks)  # W_abᵀ W_cd
    part = torch.einsum("bdrs,abcdxy->acrsxy", a_w, m)
    gram = torch.einsum("acqt,acrsxy->qrxtsy", a_h, part)  # G[(q, r, x), (t, s, y)]
    n = gram.shape[0] * gram.shape[1] * gram.shape[2]
    return gram.reshape(n, n)


@torch.no_grad()
def dense_conv_norm_upper_bound(weight: Tensor, input_size: tuple[int, int], padding: tuple[int, int],
                                estimate: float = 0.0, vectors: tuple[Tensor, Tensor] | None = None,
                                power_iters: int | None = None) -> float:
    """Certified upper bound of the zero-padded conv's 2-norm within a factor ``< 1.005`` of it, from the
    exact Gram matrix (module docstring); ``estimate`` is a known lower bound of the norm (e.g. ``σ̂``) and
    ``vectors`` its power-iteration vectors ``(u, v)`` shaped ``(1, C, H, W)``, a warm start."""
    gram = conv_gram(weight, input_size, padding)
    n = gram.shape[0]
    w = weight.detach().double()
    terms = w.shape[0] * w.shape[1] * (w.shape[2] * w.shape[3]) ** 2  # products summed into a Gram entry (≥)
    gamma = terms * _U64 / (1 - terms * _U64)
    e_gram = gamma * input_size[0] * input_size[1] * float(w.square().sum())
    if n <= EIG_MAX:
        return _eig_bound(gram, e_gram)
    x = torch.ones(n, dtype=torch.float64) + torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    warm = False
    if vectors is not None:  # the smaller side's vector, in the Gram matrix's (h, w, c) order
        vec = vectors[0] if weight.shape[0] < weight.shape[1] else vectors[1]
        if vec.numel() == n:
            x, warm = vec.detach().double().reshape(vec.shape[-3:]).permute(1, 2, 0).reshape(-1).clone(), True
    if power_iters is None:
        power_iters = 5 if warm else 50
    rho = 0.0
    resid = math.inf
    for _ in range(power_iters):  # O(n²) each: cheap next to one Cholesky
        x = x / x.norm().clamp_min(1e-300)
        y = gram @ x
        prev, rho = rho, float(x @ y)
        resid = float((y - rho * x).norm())
        x = y
        if abs(rho - prev) <= 1e-13 * rho:
            break
    # how far below λ_max ρ may be, heuristically ‖r‖²/gap ≈ (‖r‖/ρ)² for an accurate Rayleigh vector (a
    # wrong guess only costs a failed Cholesky, never validity)
    off = (resid / rho) ** 2 if rho > 0 else 1e-6
    rho = max(rho, float(estimate) ** 2)
    eye = torch.eye(n, dtype=torch.float64)
    floor = 8.0 * n * n * _U64  # below this the rounding terms dominate anyway
    start = min(1e-2, off)

    def certifies(delta: float) -> bool:  # does τ = ρ(1 + δ) pass the Cholesky test of τI − G ⪰ 0?
        return rho > 0 and int(torch.linalg.cholesky_ex(rho * (1.0 + delta) * eye - gram).info) == 0

    lo = 0.0
    for delta in (floor,) + tuple(10.0 ** -k for k in range(10, 1, -1)):
        if delta < start and delta < 1e-2:
            continue
        if certifies(delta):
            for _ in range(2 if lo > 0 else 0):  # bisect in log space: within ×1.8 of the least δ
                mid = (lo * delta) ** 0.5
                lo, delta = (lo, mid) if certifies(mid) else (mid, delta)
            lam = rho * (1.0 + delta) * (1.0 + 2.0 * n * (n + 1) * _U64) + e_gram
            return lam ** 0.5 * CERT_MARGIN
        lo = delta
    return _eig_bound(gram, e_gram)


def _eig_bound(gram: Tensor, e_gram: float) -> float:
    """``√λ_max`` by ``eigvalsh`` (backward stable: exact for ``G + E``, ``‖E‖ ≲ p(n)·u·‖G‖``), with margins."""
    n = gram.shape[0]
    top = max(float(torch.linalg.eigvalsh(gram)[-1]), 0.0)
    lam = top * (1.0 + 2.0 * n * (n + 1) * _U64 + n * _U64) + e_gram
    return lam ** 0.5 * CERT_MARGIN


def dense_side(weight: Tensor, input_size: tuple[int, int]) -> int:
    """``min(C_in, C_out)·H·W``: the order of the Gram matrix :func:`dense_conv_norm_upper_bound` factorises."""
    return min(int(weight.shape[0]), int(weight.shape[1])) * int(input_size[0]) * int(input_size[1])


@torch.no_grad()
def conv_norm_upper_bound(weight: Tensor, input_size: tuple[int, int], padding: tuple[int, int],
                          exhaustive: bool = False, dense_max: int | None = None, estimate: float = 0.0,
                          tight: float = TIGHT, vectors: tuple[Tensor, Tensor] | None = None,
                          enough: float = 0.0) -> float:
    """Certified upper bound of the operator 2-norm of the zero-padded, stride-1 convolution with ``weight``
    ``(C_out, C_in, k_h, k_w)`` on ``input_size`` inputs: the circular-convolution norm on the smallest valid
    grid ``(H + p_h, W + p_w)`` (or, ``exhaustive``, the smallest over all grids up to ``(H + 2p_h, W + 2p_w)``);
    where :func:`dense_side` ``≤ dense_max`` (default :data:`DENSE_MAX` on a GPU, :data:`DENSE_MAX_CPU` on
    the CPU) and the circular bound exceeds ``tight · estimate`` (``estimate``: a known lower bound such as
    ``σ̂``, with its vectors ``(u, v)``; a circular bound within that factor of it is within it of the true
    norm), the smaller of it and the exact-Gram bound (module docstring). A circular bound ``≤ enough`` is
    returned as it is (a layer whose bound is below its target is not rescaled, however tight the bound)."""
    kh, kw = weight.shape[2:]
    (h, w), (ph, pw) = input_size, padding
    if kh > 2 * ph + 1 or kw > 2 * pw + 1:
        raise ValueError(f"the bound needs kernel <= 2*padding + 1, got kernel {kh}×{kw}, padding {padding}")
    hs = range(max(h + ph, kh), h + 2 * ph + 1) if exhaustive else [max(h + ph, kh)]
    ws = range(max(w + pw, kw), w + 2 * pw + 1) if exhaustive else [max(w + pw, kw)]
    circ = min(circular_conv_norm(weight, (nh, nw)) for nh in hs for nw in ws) * CERT_MARGIN
    limit = (DENSE_MAX if weight.is_cuda else DENSE_MAX_CPU) if dense_max is None else dense_max
    if dense_side(weight, input_size) > limit or circ <= max(tight * estimate, enough):
        return circ
    return min(circ, dense_conv_norm_upper_bound(weight, input_size, padding, estimate, vectors))
