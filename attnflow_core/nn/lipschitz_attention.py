r"""Self-attention maps with global Lipschitz bounds (ℓ2 / Frobenius norm over all positions of a sample):
L2 self-attention with tied queries and keys (Kim et al. 2021) and Lipschitz-normalised kernel attention
(Dasoulas et al. 2021). Tokens are rows of ``X ∈ R^{N×D}`` (positions × channels).

**L2 attention.** Per head :math:`Q = XW` (``W ∈ R^{D×d}``, keys tied to queries), :math:`P_{ij} =
\mathrm{softmax}_j(-\|q_i - q_j\|^2/\sqrt d)` and :math:`f(X) = P X W W^\top/\sqrt d = G(XW) W^\top/\sqrt d`
with :math:`G(Q) = P(Q)Q`. Scaling ``Q`` by :math:`\tau^{-1/2}` removes the temperature, so ``Lip(G) =: κ(N)``
is parameter-free and :math:`\mathrm{Lip}(f) \le \|W\|_2^2\,\kappa(N)/\sqrt d` (*quadratic* in ``‖W‖``: the
exact constant scales by ``t²`` when ``W`` does, as ``f_t(X) = t f_1(tX)``). **Bound on κ** (our proof,
the route of Kim et al.'s Thm 3.2): with ``a_l = ‖q_i − q_l‖²`` and the self term ``a_i = 0`` (tied keys),
:math:`\sum_l P_{il} a_l \le \max_a (N-1)a/(e^a + N - 1) = W_0((N-1)/e) =: w` (concavity of ``−t ln t`` makes
equal distances worst; ``W₀`` the principal Lambert-W branch). The Jacobian is ``P ⊗ I + E`` with blocks
:math:`E_{ik} = 2P_{ik}(q_k - g_i)(q_i - q_k)^\top` (``k ≠ i``) and
:math:`E_{ii} = -2\sum_l P_{il}(q_l - g_i)(q_i - q_l)^\top`. By Cauchy–Schwarz and the variance bound each
block row of ``E`` sums to ≤ ``4w`` and each block column to ≤ ``4w(N−1) + 2w``, so
:math:`\|E\|_2 \le \sqrt{4w\,(4w(N-1)+2w)} \le 4w\sqrt N`; with :math:`\|P\|_2 \le \sqrt{\|P\|_1\|P\|_\infty} \le \sqrt N`:

.. math:: \kappa(N) \le \sqrt N\,\big(4 W_0((N-1)/e) + 1\big).

Multi-head with values ``W^V_h ∈ R^{D×d}`` and output ``W^O``:
:math:`\mathrm{Lip}(F) \le \kappa(N)/\sqrt d\cdot\sqrt{\sum_h \|W^Q_h\|^4\|W^V_h\|^2}\cdot\|W^O\|`.

**Lipschitz-normalised kernel attention.** Output position ``i`` with vector ``o_i``, input positions ``j``
with vectors ``n_j`` and values ``v_j`` (each an affine map of its own token: ``‖∂o_i/∂x_i‖ ≤ ν_o`` etc.);
:math:`a = \|O\|_F`, :math:`b = \max_j\|n_j\|`, :math:`c = \max_j\|v_j\|`, :math:`M = \max(ab, ac, bc)`
(Dasoulas et al.'s normaliser), scores :math:`\tilde s_{ij} = \lambda\,o_i^\top n_j / M`, weights
:math:`P_{ij} = \kappa(\tilde s_{ij}) / \sum_l \kappa(\tilde s_{il})` for a positive kernel ``κ`` with
``0 ≤ (log κ)' ≤ 1`` (``exp``; ``ELU + 1``), output :math:`f_i = \sum_j P_{ij} v_j`. Then
:math:`|\tilde s_{ij}| \le \lambda\|o_i\| b / M \le \lambda =: \sigma` and (our proof):

.. math:: \mathrm{Lip}(f) \le \sqrt{\kappa(\sigma)/\kappa(-\sigma)}\;\nu_v + \sigma\,(2\nu_o + 2\nu_n + \nu_v)

for **every** input: the value path ``P ΔV`` has :math:`\|P\|_2 \le \sqrt{N \max P_{ij}} \le
\sqrt{\kappa(\sigma)/\kappa(-\sigma)}`; the ``do_i`` and ``dn_j`` paths are bounded by ``λ·b·c/M ≤ λ`` and
``λ·a·c/M ≤ λ`` times ``ν_o``, ``ν_n`` (Cauchy–Schwarz, :math:`\sum_j P_{ij}\|v_j - f_i\|^2 \le c^2`); the
normaliser path by :math:`\lambda\,|dM|\,abc/M^2 \le \lambda(|da| + |db| + |dc|)` (in each of the three cases
of the max, e.g. ``M = ab`` gives ``c ≤ a, b``). The map is positively homogeneous, so no input domain is
needed. Without the normaliser (plain dot products) attention is not Lipschitz (Kim et al., Thm 3.1).

**Windowed (local) attention.** Split the ``H×W`` map into non-overlapping ``w_h×w_w`` windows (they must
tile it); each token attends only within its window, ``N_w = w_h w_w`` tokens, with the same weights in
every window. If ``f`` (``N_w`` tokens) has ``Lip(f) ≤ L(N_w)``, the windowed map ``f_win`` does too (our
proof): the windows ``S_1 … S_m`` partition the positions and ``f_win(X)_{S_k} = f(X_{S_k})``, so

.. math:: \|f_{win}(X) - f_{win}(Y)\|_F^2 = \sum_k \|f(X_{S_k}) - f(Y_{S_k})\|_F^2
          \le L(N_w)^2 \sum_k \|X_{S_k} - Y_{S_k}\|_F^2 = L(N_w)^2\,\|X - Y\|_F^2

(equivalently: after permuting the tokens window by window the Jacobian is block diagonal and its norm is
the largest block's). The L2 bound therefore uses ``κ(N_w)`` instead of ``κ(N)``: a tighter certificate and
less shrinkage of ``F``. The LipschitzNorm normaliser is taken per window, and its bound does not depend on
``N``. Overlapping or shifted windows are not covered by this argument and are not offered.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.errors import FlowError

KERNELS = ("exp", "elu1")


def tokens(h: Tensor) -> Tensor:
    """``(B, D, H, W)`` map → ``(B, N, D)`` tokens (its pixels), a real permutation, not a reinterpreting view."""
    return h.flatten(2).transpose(1, 2)


def untokens(x: Tensor, like: Tensor) -> Tensor:
    """``(B, N, D)`` tokens → the ``(B, D, H, W)`` shape of ``like`` (inverse of :func:`tokens`)."""
    return x.transpose(1, 2).reshape(like.shape)


def window_pair(window: int | tuple[int, int] | None, where: str = "attention") -> tuple[int, int] | None:
    """``w`` → ``(w, w)``; checks that a window is a positive int or a pair of them (``None``: global)."""
    if window is None:
        return None
    ws = (window, window) if isinstance(window, int) else tuple(window) if isinstance(window, (tuple, list)) else ()
    if len(ws) != 2 or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in ws):
        raise FlowError(f"{where}: the attention window must be a positive int or a pair of them (None: global), "
                        f"got {window!r}")
    return ws


def resolve_window(window: int | tuple[int, int] | None, size: tuple[int, int], where: str = "attention"
                   ) -> tuple[int, int] | None:
    """The window used on an ``H×W`` map: per axis ``min(w, side)``; ``None`` (global attention) when it covers
    the whole map. Raises :class:`FlowError` when it does not tile the map (no padding is defined)."""
    ws = window_pair(window, where)
    if ws is None:
        return None
    h, w = (int(v) for v in size)
    win = (min(ws[0], h), min(ws[1], w))
    if h % win[0] or w % win[1]:
        raise FlowError(f"{where}: a {win[0]}×{win[1]} attention window does not tile the {h}×{w} map (windows do not "
                        f"overlap and no padding is defined); choose a window that divides every map it meets")
    return None if win == (h, w) else win


def window_tokens(h: Tensor, win: tuple[int, int]) -> Tensor:
    """``(B, D, H, W)`` map → ``(B·m, w_h·w_w, D)`` tokens, one row of the batch per window (row-major)."""
    b, d, hh, ww = h.shape
    wh, wd = win
    x = h.reshape(b, d, hh // wh, wh, ww // wd, wd).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * (hh // wh) * (ww // wd), wh * wd, d)


def window_untokens(x: Tensor, like: Tensor, win: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_tokens` into the shape of ``like``."""
    b, d, hh, ww = like.shape
    wh, wd = win
    y = x.reshape(b, hh // wh, ww // wd, wh, wd, d).permute(0, 5, 1, 3, 2, 4)
    return y.reshape(b, d, hh, ww)


def lambert_w0(z: float) -> float:
    """Principal branch of the Lambert W function for ``z ≥ 0`` (Halley's iteration, to float precision)."""
    if z < 0:
        raise ValueError(f"lambert_w0 is implemented for z >= 0, got {z}")
    w = math.log1p(z)
    for _ in range(50):
        ew = math.exp(w)
        f = w * ew - z
        step = f / (ew * (w + 1) - (w + 2) * f / (2 * w + 2))
        w -= step
        if abs(step) <= 1e-15 * max(1.0, abs(w)):
            break
    return w


def l2_attention_constant(n: int) -> float:
    """``κ(N) = √N (4 W₀((N−1)/e) + 1)``: Lipschitz bound of the parameter-free L2 attention map ``G``."""
    return math.sqrt(n) * (4.0 * lambert_w0((n - 1) / math.e) + 1.0)


def l2_attention_core(x: Tensor, wq: Tensor) -> Tensor:
    """``G_h(X W_h) = P_h Q_h`` for every head: ``x (B, N, D)``, ``wq (H, D, d)`` → ``(B, H, N, d)``."""
    q = torch.einsum("bnd,hde->bhne", x, wq)
    sq = q.square().sum(-1)
    dist = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * q @ q.transpose(-1, -2)).clamp_min(0.0)
    p = torch.softmax(-dist / math.sqrt(wq.shape[-1]), dim=-1)
    return p @ q


def l2_attention_fused(q: Tensor) -> Tensor:
    """``G(Q) = P(Q) Q`` on queries ``(T, N, d)`` as in :func:`l2_attention_core`, the logits in one fused
    product: ``−‖q_i − q_j‖²`` and ``2 q_iᵀq_j − ‖q_j‖²`` differ by ``−‖q_i‖²``, constant along the softmax
    row, so ``P`` is the same (equal up to rounding; fewer passes over the ``N×N`` logits in the forward and
    in every backward)."""
    s = 1.0 / math.sqrt(q.shape[-1])
    logits = torch.baddbmm(q.square().sum(-1).unsqueeze(1), q, q.transpose(1, 2), beta=-s, alpha=2.0 * s)
    return torch.softmax(logits, dim=-1) @ q


def _kernel(s: Tensor, kind: str) -> Tensor:
    """Attention weights normalised over the last axis."""
    if kind == "exp":
        return torch.softmax(s, dim=-1)
    k = torch.nn.functional.elu(s) + 1.0  # > 0 everywhere, (log k)' ∈ (0, 1]
    return k / k.sum(-1, keepdim=True)


def kernel_value(sigma: float, kind: str) -> tuple[float, float]:
    """``(κ(σ), κ(−σ))`` of the kernel."""
    if kind == "exp":
        return math.exp(sigma), math.exp(-sigma)
    return sigma + 1.0, math.exp(-sigma)


def lipnorm_attention(out_vecs: Tensor, in_vecs: Tensor, values: Tensor, scale: float, kind: str = "exp",
                      eps: float = 1e-12) -> Tensor:
    """Lipschitz-normalised attention (module docstring): ``out_vecs (B, N_o, e)``, ``in_vecs (B, N_i, e)``,
    ``values (B, N_i, d_v)`` → ``(B, N_o, d_v)``."""
    a = out_vecs.flatten(1).norm(dim=1)
    b = in_vecs.norm(dim=-1).amax(-1)
    c = values.norm(dim=-1).amax(-1)
    m = torch.maximum(torch.maximum(a * b, a * c), b * c) + eps
    s = scale * (out_vecs @ in_vecs.transpose(-1, -2)) / m.view(-1, 1, 1)
    return _kernel(s, kind) @ values


def lipnorm_attention_bound(nu_out: Tensor, nu_in: Tensor, nu_v: Tensor, scale: float, kind: str = "exp") -> Tensor:
    """``√(κ(σ)/κ(−σ))·ν_v + σ(2ν_o + 2ν_n + ν_v)`` with ``σ = scale`` (module docstring)."""
    hi, lo = kernel_value(scale, kind)
    return math.sqrt(hi / lo) * nu_v + scale * (2 * nu_out + 2 * nu_in + nu_v)


def spectral_norm(w: Tensor) -> Tensor:
    """``‖w‖₂`` of a matrix (differentiable), computed in float64 and cast back."""
    return torch.linalg.matrix_norm(w.double(), ord=2).to(w.dtype)
