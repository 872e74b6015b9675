r"""ACF's attentions inside the residual branch ``g`` of a contractive flow, contractive by construction,
and the authors' published dot-product form for comparison.

Placement (ACF code): after the last hidden activation of the conv branch, before its output conv, over
all ``N = H·W`` positions of the ``(B, D, H, W)`` hidden map; tokens are its ``D``-channel pixels.
``window=(w_h, w_w)`` (or ``w``) attends instead within non-overlapping windows that tile the map ("localized"
self-attention in ACF's abstract; ACF's code is global, the default here): ``N_w = w_h w_w`` tokens per
window, the same weights in every window, and ``B_F`` computed with ``N_w``, which bounds the windowed map
too (proof in :mod:`~attnflow_core.nn.lipschitz_attention`). Cost ``O(N·N_w)`` instead of ``O(N²)``
per evaluation, and the log-det series evaluates the branch's Jacobian several times per step.
A window covering the whole map is the global attention (same code path, same numbers).

**Construction** (both variants). With ``F`` an attention map and ``B_F`` a bound on ``Lip(F)`` that holds
for every input and is recomputed from the current weights at every forward
(:mod:`attnflow_core.nn.lipschitz_attention`),

.. math:: \mathrm{Attn}(h) = (1-\beta)\,h + \beta\,F(h)/B_F,\qquad \beta = \mathrm{sigmoid}(\gamma) \in (0, 1),

so :math:`\mathrm{Lip}(\mathrm{Attn}) \le (1-\beta) + \beta = 1` and the branch keeps ``Lip(g) ≤ Π‖W̄_l‖``.
ACF's code instead returns ``h + γ·SA(h)/B`` with an unconstrained ``γ`` (``Lip ≥ 1``, growing with
``|γ|``), puts ``Dropout2d(0.5)`` before it (×2 in training) and normalises the dot-product scores by weight
norms frozen at construction: no bound holds. Here there is no dropout, the gate is a convex weight and
the bound is recomputed every forward from the weights it bounds.

* :class:`L2SelfAttention` -- Kim et al.'s multi-head L2 attention (tied queries/keys); ``B_F`` is
  :math:`\kappa(N)/\sqrt d\cdot\sqrt{\sum_h\|W^Q_h\|^4\|W^V_h\|^2}\cdot\|W^O\|` (quadratic in ``‖W^Q_h‖``;
  ``κ(N_w)`` with windows).
* :class:`LipschitzDotAttention` -- dot-product attention with Dasoulas et al.'s LipschitzNorm on the
  scores, ``B_F = e^{σ}‖W_V‖ + σ(2‖W_Q‖ + 2‖W_K‖ + ‖W_V‖)``, ``σ = 1/√d``. Dasoulas et al.'s own constant
  was not available to us; this one is derived in :mod:`~attnflow_core.nn.lipschitz_attention`
  and holds on all of ``R^{N×D}`` (the map is positively homogeneous), so no input domain has to be
  enforced. The *published* ACF normaliser (weight norms at initialisation, ``B_dp(N, C)``) is not an
  input-independent bound: plain dot-product attention is not Lipschitz (Kim et al., Thm 3.1).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.errors import FlowError
from .lipschitz_attention import (
    l2_attention_constant,
    l2_attention_core,
    l2_attention_fused,
    lipnorm_attention,
    lipnorm_attention_bound,
    resolve_window,
    spectral_norm,
    tokens,
    untokens,
    window_pair,
    window_tokens,
    window_untokens,
)


class _ConvexGate(nn.Module):
    def __init__(self, gate_init: float, window: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))
        self.window = window_pair(window, type(self).__name__)

    def attend_map(self, h: Tensor) -> tuple[Tensor, int]:
        """``F`` on the ``(B, D, H, W)`` map -- over all positions, or per window -- and the number of tokens
        ``N`` (or ``N_w``) that its bound uses."""
        win = resolve_window(self.window, h.shape[-2:], type(self).__name__)
        if win is None:
            x = tokens(h)
            return untokens(self.attend(x), h), x.shape[1]
        x = window_tokens(h, win)  # (B·m, N_w, D): one row per window
        return window_untokens(self.attend_windows(x), h, win), x.shape[1]

    def attend_windows(self, x: Tensor) -> Tensor:
        return self.attend(x)

    def extra_repr(self) -> str:
        return f"window={self.window}" if self.window is not None else "global"

    def mix(self, h: Tensor, f: Tensor, bound: Tensor) -> Tensor:
        beta = torch.sigmoid(self.gate)
        return (1 - beta) * h + beta * f / bound

    def lipschitz_bound(self) -> float:
        """``(1 − β) + β·Lip(F)/B_F ≤ 1``: certified by construction (``B_F`` bounds ``Lip(F)``)."""
        return 1.0


class L2SelfAttention(_ConvexGate):
    r"""Contractive multi-head L2 self-attention (module docstring) on a ``(B, D, H, W)`` map, global
    (``window=None``) or within ``window``-sized tiles (``B_F`` then uses the ``N_w`` tokens of a window).

    References: Kim, Papamakarios & Mnih, "The Lipschitz Constant of Self-Attention", ICML 2021;
    Mukherjee, Patro & Namboodiri, "Attentive Contractive Flow with Lipschitz Constrained Self-Attention",
    BMVC 2023.
    """

    def __init__(self, channels: int, heads: int = 1, gate_init: float = -2.0,
                 window: int | tuple[int, int] | None = None) -> None:
        super().__init__(gate_init, window)
        if channels % heads:
            raise FlowError(f"L2SelfAttention: {channels} channels do not split into {heads} heads")
        d = channels // heads
        self.heads, self.head_dim = heads, d
        self.wq = nn.Parameter(torch.randn(heads, channels, d) / math.sqrt(channels))
        self.wv = nn.Parameter(torch.randn(heads, channels, d) / math.sqrt(channels))
        self.wo = nn.Parameter(torch.randn(heads * d, channels) / math.sqrt(heads * d))

    def raw_bound(self, n: int) -> Tensor:
        """Bound on ``Lip(F)`` for ``n`` positions, from the current weights (differentiable)."""
        nq = torch.stack([spectral_norm(w) for w in self.wq])
        nv = torch.stack([spectral_norm(w) for w in self.wv])
        return l2_attention_constant(n) / math.sqrt(self.head_dim) * (nq ** 4 * nv ** 2).sum().sqrt() * spectral_norm(self.wo)

    def attend(self, x: Tensor) -> Tensor:
        """``F(X)`` on tokens ``(B, N, D)``."""
        g = l2_attention_core(x, self.wq)  # (B, H, N, d) = P_h Q_h
        m = self.wq.transpose(1, 2) @ self.wv / math.sqrt(self.head_dim)  # W_Qᵀ W_V / √d per head
        heads = g @ m.unsqueeze(0)  # f_h(X) W_V,h = P_h Q_h W_Qᵀ W_V / √d
        return heads.transpose(1, 2).flatten(2) @ self.wo

    def attend_windows(self, x: Tensor) -> Tensor:
        """:meth:`attend` with ``W_Q,hᵀ W_V,h W_O,h / √d`` folded into one ``d × D`` matrix per head, every
        projection a single matrix product over all tokens and fused logits
        (:func:`~attnflow_core.nn.lipschitz_attention.l2_attention_fused`): the same map, equal up to
        rounding; used with windows, where the many short token rows make :meth:`attend`'s broadcast
        products slow (the global path keeps :meth:`attend`, so its numbers stay bit for bit)."""
        t, n, dim = x.shape
        hh, d = self.heads, self.head_dim
        q = (x.reshape(t * n, dim) @ self.wq.transpose(0, 1).reshape(dim, hh * d)).view(t, n, hh, d).transpose(1, 2)
        g = l2_attention_fused(q.reshape(t * hh, n, d)).view(t, hh, n, d)  # P_h Q_h
        mo = self.wq.transpose(1, 2) @ self.wv @ self.wo.view(hh, d, dim) / math.sqrt(d)  # (H, d, D)
        return (g.transpose(1, 2).reshape(t * n, hh * d) @ mo.reshape(hh * d, dim)).view(t, n, dim)

    def forward(self, h: Tensor) -> Tensor:
        f, n = self.attend_map(h)
        return self.mix(h, f, self.raw_bound(n))


class LipschitzDotAttention(_ConvexGate):
    r"""Contractive dot-product self-attention with LipschitzNorm scores (module docstring); one head with
    query/key width ``qk_channels`` (default ``D/8`` as in ACF's code) and value width ``D``; global or
    windowed (LipschitzNorm's normaliser then per window; ``B_F`` does not depend on ``N``).

    References: Dasoulas, Scaman & Virmaux, "Lipschitz Normalization for Self-Attention Layers with
    Application to Graph Neural Networks", ICML 2021; Mukherjee, Patro & Namboodiri, "Attentive Contractive
    Flow with Lipschitz Constrained Self-Attention", BMVC 2023.
    """

    def __init__(self, channels: int, qk_channels: int | None = None, gate_init: float = -2.0,
                 window: int | tuple[int, int] | None = None) -> None:
        super().__init__(gate_init, window)
        d = qk_channels or max(1, channels // 8)
        self.q, self.k, self.v = nn.Linear(channels, d), nn.Linear(channels, d), nn.Linear(channels, channels)
        self.scale = 1.0 / math.sqrt(d)

    def raw_bound(self, n: int | None = None) -> Tensor:
        return lipnorm_attention_bound(spectral_norm(self.q.weight), spectral_norm(self.k.weight),
                                       spectral_norm(self.v.weight), self.scale, "exp")

    def attend(self, x: Tensor) -> Tensor:
        return lipnorm_attention(self.q(x), self.k(x), self.v(x), self.scale, "exp")

    def forward(self, h: Tensor) -> Tensor:
        return self.mix(h, self.attend_map(h)[0], self.raw_bound())


class ACFPublishedDotAttention(nn.Module):
    r"""ACF's released dot-product attention (``Self_Attn``, lib/resflow.py:607-666), for measurement only:
    ``q, k: D → D/8``, ``v: D → D`` (biases), scores ``q_iᵀk_j / ν`` with ``ν = max(u·v, v·u, u·w)`` from the
    weights *at construction* (``u = ‖W_q‖_F``, ``v, w`` the largest column norms of ``W_k, W_v``), row softmax,
    output divided by ``B_dp = e^{√3}√(N/D) + 2√6`` and returned as ``γ·out + h`` with a free ``γ`` (0 at init).

    References: Mukherjee, Patro & Namboodiri, "Attentive Contractive Flow with Lipschitz Constrained
    Self-Attention", BMVC 2023 (code at github.com/avideep/attentive-contractive-flow, HEAD 8a240fb).
    """

    def __init__(self, channels: int, gamma: float = 0.0) -> None:
        super().__init__()
        d = max(1, channels // 8)
        self.q, self.k = nn.Conv2d(channels, d, 1), nn.Conv2d(channels, d, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(float(gamma)))
        with torch.no_grad():
            u = self.q.weight.flatten(1).norm()
            v = self.k.weight.flatten(1).norm(dim=0).max()
            w = self.v.weight.flatten(1).norm(dim=0).max()
        self.register_buffer("norm_value", torch.maximum(torch.maximum(u * v, v * u), u * w))

    def forward(self, h: Tensor) -> Tensor:
        b, c, hh, ww = h.shape
        n = hh * ww
        q, k, v = self.q(h).flatten(2), self.k(h).flatten(2), self.v(h).flatten(2)
        p = torch.softmax(q.transpose(1, 2) @ k / self.norm_value, dim=-1)  # (B, N, N)
        out = (v @ p.transpose(1, 2)).view(b, c, hh, ww)
        bound = math.exp(math.sqrt(3)) * math.sqrt(n / c) + 2 * math.sqrt(6)
        return self.gamma * out / bound + h

    def lipschitz_bound(self) -> float:
        return math.inf  # none holds: identity + free γ, and dot-product attention is not Lipschitz
