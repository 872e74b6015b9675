r"""Zha et al.'s invertible attention (iDP, iCon) as published, and a corrected form that is contractive.

The block is ``y = x + F(x)`` (a residual block with the i-ResNet log-det series and a fixed-point
inverse); on ``x`` with ``C`` channels and ``N`` positions, with 1×1 convs:

* queries ``q_i = W_q x_i + b_q``, keys ``k_j = W_k x_j + b_k`` (``C/4`` channels each);
* **iDP** score ``s_ij = q_iᵀ k_j``; **iCon** score ``s_ij = aᵀq_i + bᵀk_j + c`` (a 1×1 conv with one output
  on the concatenation ``[q_i; k_j]``);
* weights ``e_ij = ELU(s_ij)`` (down to −1), normalised with a fixed 1.5: gen repo
  ``A_ij = e_ij / (1.5 Σ_{i′j′} e_{i′j′})`` (``normalise="global"``), main repo ``A_ij = e_ij / (1.5 Σ_{i′} e_{i′j})``
  (``"column"``);
* output ``F(x)_j = Γ(Σ_i A_ij V x_i)`` with ``V``, ``Γ`` softly spectrally normalised ``C → C`` 1×1 convs (0.9).

Placement (gen repo, ``--doAttention True False False``): one block at the end of scale 1 of the i-ResNet,
before its split, on 12×16×16; ``W_q, W_k`` and the concat conv unconstrained. Parameters: 390 (iDP), 397 (iCon).

**The flaw.** The intended bound ``0.9·0.9·(2/3) = 0.54`` treats ``A`` as a fixed non-negative matrix; but
``A`` depends on ``x``, ELU weights can be negative and the normaliser can vanish or change sign, where
``F`` and its Jacobian blow up (reproduced by :func:`attnflow_core.diagnostics.lipschitz.find_normaliser_root`
and the tests): the published block is not contractive and its inverse is not guaranteed.

**Corrected** (``variant="corrected"``), the minimal changes that make a proof go through:
(1) kernel ``ELU(s) + 1 > 0`` instead of ``ELU(s)`` (so every normaliser is positive); (2) per-output
normalisation over the inputs (the main repo's axis), without the 1.5; (3) LipschitzNorm on the scores
(:mod:`~attnflow_core.nn.lipschitz_attention`; for iCon the score is the bilinear form of the augmented
vectors ``(bᵀk_j + c, 1)`` and ``(1, aᵀq_i)``); (4) ``F`` divided by its certified bound
``B_F = [√(2e)‖V̄‖ + 2‖·‖_q + 2‖·‖_k + ‖V̄‖]·‖Γ̄‖`` (``‖·‖_q = ‖W_q‖`` for iDP, ``‖W_qᵀa‖`` for iCon) and
multiplied by ``coeff`` (0.9): ``Lip(F) ≤ 0.9`` for every input and weight. Same parameters as published.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError
from .lipschitz import SpectralConv2d
from .lipschitz_attention import lipnorm_attention, lipnorm_attention_bound, spectral_norm, tokens, untokens

KINDS = ("idp", "icon")
VARIANTS = ("published", "corrected")


class ZhaAttention(nn.Module):
    r"""``F`` of Zha et al.'s iDP / iCon block (module docstring), ``(B, C, H, W) → (B, C, H, W)``;
    ``normalise`` (``"global"`` by default, or ``"column"``) is the published form's option only.

    References: Zha, Yu, Tulyakov, Luo, Wu, "Invertible Attention", arXiv 2106.09003 (2021); code
    github.com/Schwartz-Zha/InvertibleAttention(-iResNet).
    """

    def __init__(self, channels: int, kind: str = "idp", variant: str = "published", normalise: str | None = None,
                 coeff: float = 0.9) -> None:
        super().__init__()
        if variant == "corrected" and normalise is not None:  # it normalises per output, always (no 1.5)
            raise FlowError(f"ZhaAttention: normalise={normalise!r} applies to the published form only; the "
                            f"corrected form always normalises per output over the inputs (leave normalise unset)")
        normalise = "global" if normalise is None and variant == "published" else normalise
        if kind not in KINDS or variant not in VARIANTS or normalise not in ("global", "column", None):
            raise FlowError(f"ZhaAttention: kind in {KINDS}, variant in {VARIANTS}, normalise in "
                            f"('global', 'column'); got {kind!r}, {variant!r}, {normalise!r}")
        c4 = max(1, channels // 4)
        self.kind, self.variant, self.normalise, self.coeff = kind, variant, normalise, float(coeff)
        self.channels = channels
        self.q, self.k = nn.Conv2d(channels, c4, 1), nn.Conv2d(channels, c4, 1)
        self.concat = nn.Conv2d(2 * c4, 1, 1) if kind == "icon" else None
        self.value = SpectralConv2d(channels, channels, 1, coeff=coeff)
        self.gamma = SpectralConv2d(channels, channels, 1, coeff=coeff)

    # -- the two forms ---------------------------------------------------------------------------
    def _published_weights(self, q: Tensor, k: Tensor) -> Tensor:
        """``A`` (B, N_i, N_j) as in the published code."""
        e = self._elu_scores(q, k)
        if self.normalise == "global":
            return e / (1.5 * e.sum(dim=(1, 2), keepdim=True))
        return e / (1.5 * e.sum(dim=1, keepdim=True))

    @torch.no_grad()
    def published_normaliser(self, x: Tensor) -> Tensor:
        """The published form's normaliser ``Σ e`` before the 1.5: ``(B,)`` (global) or ``(B, N_j)`` (column)."""
        q, k = tokens(self.q(x)), tokens(self.k(x))
        return self._elu_scores(q, k).sum(dim=(1, 2) if self.normalise == "global" else 1)

    def _elu_scores(self, q: Tensor, k: Tensor) -> Tensor:
        if self.kind == "idp":
            s = q @ k.transpose(1, 2)  # s_ij = q_i·k_j
        else:
            w = self.concat.weight.flatten()
            c4 = q.shape[-1]
            s = (q @ w[:c4]).unsqueeze(2) + (k @ w[c4:]).unsqueeze(1) + self.concat.bias
        return F.elu(s)

    def _vectors(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Corrected form: output-side and input-side vectors whose inner product is the score."""
        if self.kind == "idp":  # output j uses k_j, inputs i use q_i
            return k, q
        w = self.concat.weight.flatten()
        c4 = q.shape[-1]
        alpha, beta = q @ w[:c4], k @ w[c4:] + self.concat.bias
        ones = torch.ones_like(alpha)
        return torch.stack([beta, ones], -1), torch.stack([ones, alpha], -1)

    def raw_bound(self) -> Tensor:
        """``B_F`` of the corrected form from the current weights (module docstring)."""
        wq, wk = self.q.weight.flatten(1), self.k.weight.flatten(1)
        if self.kind == "idp":
            nu_out, nu_in = spectral_norm(wk), spectral_norm(wq)
        else:  # the token maps x ↦ bᵀ(W_k x) and x ↦ aᵀ(W_q x)
            w = self.concat.weight.flatten()
            c4 = wq.shape[0]
            nu_out, nu_in = (w[c4:] @ wk).norm(), (w[:c4] @ wq).norm()
        nv = spectral_norm(self.value.normalized_weight().flatten(1))
        ng = spectral_norm(self.gamma.normalized_weight().flatten(1))
        return lipnorm_attention_bound(nu_out, nu_in, nv, 1.0, "elu1") * ng

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = tokens(self.q(x)), tokens(self.k(x)), tokens(self.value(x))
        if self.variant == "published":
            out = self._published_weights(q, k).transpose(1, 2) @ v  # out_j = Σ_i A_ij v_i
            return self.gamma(untokens(out, x))
        out = lipnorm_attention(*self._vectors(q, k), v, 1.0, "elu1")
        return self.coeff * self.gamma(untokens(out, x)) / self.raw_bound()

    # -- certificates ----------------------------------------------------------------------------
    @property
    def claimed_bound(self) -> float:
        """The bound the published design intends: ``0.9·0.9·(2/3)`` (not valid, module docstring)."""
        return self.value.coeff * self.gamma.coeff / 1.5

    def lipschitz_bound(self) -> float:
        """Certified ``Lip(F)``: ``coeff`` for the corrected form, none (``inf``) for the published one."""
        return self.coeff if self.variant == "corrected" else math.inf
