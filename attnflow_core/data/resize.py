r"""MATLAB-style bicubic ``imresize``: how SR benchmarks make LR images (and how LR-PSNR downscales).

For each output pixel ``x = 1..n_out`` (1-based, per axis) with scale :math:`s = n_{out}/n_{in}`:

* its position in input coordinates is :math:`u = x/s + \tfrac12(1 - 1/s)` (pixel centres aligned);
* the kernel is Keys' cubic with :math:`a = -\tfrac12`:
  :math:`k(t) = 1.5|t|^3 - 2.5|t|^2 + 1` for :math:`|t|\le 1`,
  :math:`-0.5|t|^3 + 2.5|t|^2 - 4|t| + 2` for :math:`1<|t|\le 2`, else 0;
* when downscaling (``s < 1``) with antialiasing the kernel is widened: :math:`h(t) = s\,k(s\,t)`
  (support ``4/s`` input pixels), otherwise :math:`h = k`;
* the weights :math:`h(u - j)` over the ``ceil(width) + 2`` input pixels ``j`` from
  :math:`\lfloor u - \mathrm{width}/2 \rfloor` on are normalised to sum to one (so constants stay
  constant), and indices outside the image are mirrored (*symmetric* padding: ``…, 2, 1, 1, 2, …``).

Each axis is one matrix ``M`` (``n_out × n_in``), so ``imresize(X) = M_h X M_wᵀ``, computed in float64.
uint8 input gives uint8 output, rounded half up and clipped to 0..255 (MATLAB rounds half away from
zero: the same for non-negative values).

References: MATLAB ``imresize`` (bicubic, antialiasing on); Keys, "Cubic convolution interpolation for
digital image processing", IEEE TASSP 1981; the SRFlow code's ``imresize.py`` convention (Lugmayr et al.,
ECCV 2020).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from ..core.errors import DataError


def cubic(t: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with ``a = -0.5``."""
    a = t.abs()
    a2, a3 = a * a, a * a * a
    return ((1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)) + ((-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


@lru_cache(maxsize=64)
def resize_matrix(n_in: int, n_out: int, antialias: bool = True) -> Tensor:
    """The ``(n_out, n_in)`` float64 matrix of one axis (see the module docstring)."""
    if n_in < 1 or n_out < 1:
        raise DataError(f"imresize needs positive sizes, got {n_in} → {n_out}")
    s = n_out / n_in
    x = torch.arange(1, n_out + 1, dtype=torch.float64)
    u = x / s + 0.5 * (1 - 1 / s)
    wide = s < 1 and antialias
    width = 4.0 / s if wide else 4.0
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64)  # 1-based input indices
    d = u.unsqueeze(1) - idx
    w = s * cubic(s * d) if wide else cubic(d)
    w = w / w.sum(dim=1, keepdim=True)
    mirror = torch.cat([torch.arange(n_in), torch.arange(n_in - 1, -1, -1)])  # symmetric padding
    j = mirror[(idx.long() - 1) % (2 * n_in)]
    return torch.zeros(n_out, n_in, dtype=torch.float64).scatter_add_(1, j, w)


def _out_size(n: int, scale: float) -> int:
    return int(math.ceil(n * scale - 1e-9))


def imresize(img: Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> Tensor:
    """Resize the last two axes of ``img`` (``(..., H, W)``, uint8 or float) by ``scale`` or to ``size``.

    ``imresize(hr, 1/8)`` makes SRFlow's LR images; ``imresize(lr, 8)`` is the bicubic SR baseline.
    """
    if not isinstance(img, Tensor) or img.dim() < 2:
        raise DataError(f"imresize expects a tensor of shape (..., H, W), got {getattr(img, 'shape', type(img))}")
    if (scale is None) == (size is None):
        raise DataError("imresize needs exactly one of scale= and size=")
    h, w = img.shape[-2:]
    oh, ow = (int(size[0]), int(size[1])) if size is not None else (_out_size(h, scale), _out_size(w, scale))
    if img.is_floating_point() and not bool(torch.isfinite(img).all()):
        raise DataError("imresize: the image contains NaN or Inf")
    x = img.to(torch.float64)
    mh = resize_matrix(h, oh, antialias).to(x.device)
    mw = resize_matrix(w, ow, antialias).to(x.device)
    y = torch.matmul(torch.matmul(mh, x), mw.T)
    if img.dtype == torch.uint8:
        return torch.floor(y + 0.5).clamp_(0, 255).to(torch.uint8)
    return y.to(img.dtype) if img.is_floating_point() else y
