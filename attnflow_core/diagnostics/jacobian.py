"""Helpers for the Jacobian walkthrough notebook: autograd Jacobians, the orderings that show their block
structure and the closed forms of Eq. 7 and 9."""
from __future__ import annotations

import torch
from torch import Tensor

from ..attention.imap import IMap
from ..attention.itrans import ITrans


def dense_jacobian(fn, x: Tensor) -> Tensor:
    """Dense Jacobian ``∂fn(x)/∂x`` at one sample ``x`` of shape (1, ...): ``(D_out, D_in)``."""
    if x.shape[0] != 1:
        raise ValueError("a dense Jacobian takes a single sample (batch size 1)")
    jac = torch.autograd.functional.jacobian(lambda t: fn(t).reshape(-1), x)
    return jac.reshape(jac.shape[0], -1)


def jacobian(layer, x: Tensor) -> Tensor:
    """Dense Jacobian ``∂y/∂x`` of a flow ``layer`` (``y, logdet = layer(x)``) at one sample: (D, D)."""
    return dense_jacobian(lambda t: layer(t)[0], x)


def mask_order(mask_flat: Tensor) -> tuple[Tensor, int]:
    """Permutation that lists masked elements (x1) first, and how many there are."""
    masked = torch.nonzero(mask_flat > 0.5).flatten()
    free = torch.nonzero(mask_flat <= 0.5).flatten()
    return torch.cat([masked, free]), int(masked.numel())


def itrans_order(layer: ITrans, shape: tuple[int, int, int, int]) -> tuple[Tensor, int]:
    r"""Permutation for iTrans: the masked elements (x1) first, then x2 grouped by feature within a patch, each
    group holding that feature in the ``N`` patches in patch order; and how many are masked.

    Since :math:`y_{n,j} = \sum_k W_{nk}\,x_{k,j}` for every free feature ``j``, in this order
    :math:`\partial y_2/\partial x_2 = I_{n_u}\otimes W` (``n_u`` copies of ``W`` on the diagonal).
    """
    _, c, h, w = shape
    patches = layer._to_patches(torch.arange(c * h * w).view(1, c, h, w))[0]  # (N, P): flat index of each feature
    m = layer.patch_mask(h, w, torch.zeros((), dtype=torch.float64))
    masked = patches[:, m > 0.5].flatten()
    free = patches[:, m <= 0.5].T.flatten()
    return torch.cat([masked, free]), int(masked.numel())


@torch.no_grad()
def imap_closed_form(layer: IMap, x: Tensor) -> dict[str, Tensor]:
    """Eq. 7 term by term: log det = Σ_p n_p log a_p + Σ_{c,p} M_{c,p} log ς_c."""
    m = layer.mask(x.shape[2], x.shape[3], x)
    a = layer._attention(x * m, None)[:, 0]
    sc = layer._fixed_scale()[0]
    n_p = (1 - m).sum(0)
    attn_term = (n_p * torch.log(a)).flatten(1).sum(1)
    scale_term = (m * torch.log(sc)).sum()
    return {"mask": m, "a": a, "n_p": n_p, "attention_term": attn_term, "scale_term": scale_term,
            "logdet": attn_term + scale_term}


@torch.no_grad()
def itrans_closed_form(layer: ITrans, x: Tensor) -> dict[str, Tensor]:
    """Eq. 9: log det = n_u · log det W, with W the N×N patch attention matrix."""
    _, c, h, w = x.shape
    m = layer.patch_mask(h, w, x)
    x1 = layer._from_patches(layer._to_patches(x) * m, c, h, w)
    wmat = layer.attention_matrix(x1)
    n_u = (1 - m).sum()
    return {"patch_mask": m, "W": wmat, "n_u": n_u, "logdet": n_u * torch.log(torch.linalg.det(wmat))}
