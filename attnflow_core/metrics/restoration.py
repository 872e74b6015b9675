r"""Restoration metrics of super-resolution, with SRFlow's conventions: uint8 RGB, the full image, no border
crop, no Y channel; one value per image.

* :func:`psnr`: :math:`10\log_{10}(255^2/\mathrm{MSE})` over all channels and pixels (``skimage.metrics.
  peak_signal_noise_ratio`` with the uint8 data range);
* :func:`ssim`: Wang et al.'s SSIM with a 7×7 uniform window, :math:`K_1 = 0.01`, :math:`K_2 = 0.03`,
  ``L = 255``, sample covariances (``N/(N-1)``), averaged over the windows that fit inside the image and
  then over channels (``skimage.metrics.structural_similarity(..., channel_axis=-1)`` defaults);
* :func:`lr_psnr`: PSNR between the LR input and the SR output downscaled 8× by MATLAB-style bicubic
  (:func:`~attnflow_core.data.resize.imresize`, rounded to uint8): does the SR image explain its input?
* :class:`LPIPS`: the ``lpips`` package with ``net="alex"`` (v0.1 linear heads) on inputs
  ``uint8/127.5 − 1``. Its AlexNet backbone comes from torchvision's ImageNet weights, downloaded on first
  use; where they cannot be had, ``LPIPS.available`` is False and ``reason`` says why (a random backbone
  is never used).

References: Wang et al., "Image quality assessment: from error visibility to structural similarity", IEEE
TIP 2004 (SSIM); Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
CVPR 2018 (LPIPS); Lugmayr et al., "SRFlow", ECCV 2020 (LR-PSNR and the conventions).
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import FlowError
from ..data.resize import imresize

SSIM_WINDOW, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03


def _pair(a: Tensor, b: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """Two uint8 image batches of the same shape as float64 ``(N, C, H, W)``."""
    for name, t in (("first", a), ("second", b)):
        if not isinstance(t, Tensor) or t.dtype != torch.uint8 or t.dim() not in (3, 4):
            raise FlowError(f"{what}: the {name} argument must be a uint8 image tensor (N, C, H, W) or (C, H, W), "
                            f"got {getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")
    if a.shape != b.shape:
        raise FlowError(f"{what}: image shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() == 3:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    return a.to(torch.float64), b.to(torch.float64)


def psnr(reference: Tensor, test: Tensor) -> Tensor:
    """Per-image PSNR in dB of uint8 images (``inf`` for identical images)."""
    x, y = _pair(reference, test, "psnr")
    mse = (x - y).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(255.0 ** 2 / mse)


def ssim(reference: Tensor, test: Tensor) -> Tensor:
    """Per-image SSIM of uint8 images (skimage's defaults; the mean of the per-channel SSIMs)."""
    x, y = _pair(reference, test, "ssim")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise FlowError(f"ssim needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    n = SSIM_WINDOW ** 2
    mean = lambda t: F.avg_pool2d(t, SSIM_WINDOW, stride=1)  # the windows that fit: skimage's border crop
    ux, uy = mean(x), mean(y)
    cov = n / (n - 1)
    vx, vy, vxy = cov * (mean(x * x) - ux * ux), cov * (mean(y * y) - uy * uy), cov * (mean(x * y) - ux * uy)
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)


def lr_psnr(lr: Tensor, sr: Tensor, scale: int = 8) -> Tensor:
    """PSNR between the uint8 LR input and the uint8 SR output downscaled by ``1/scale`` (MATLAB bicubic)."""
    if not isinstance(sr, Tensor) or not isinstance(lr, Tensor) or sr.dim() != lr.dim() \
            or tuple(sr.shape[-2:]) != (scale * lr.shape[-2], scale * lr.shape[-1]):
        raise FlowError(f"lr_psnr: SR {tuple(getattr(sr, 'shape', ()))} and LR {tuple(getattr(lr, 'shape', ()))} "
                        f"are not a ×{scale} pair")
    return psnr(lr, imresize(sr, 1.0 / scale))


class LPIPS:
    """LPIPS (AlexNet, v0.1) of uint8 images, or unavailable with a reason (see the module docstring)."""

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu") -> None:
        self.net, self.model, self.reason = net, None, ""
        try:
            import lpips
        except ImportError:
            self.reason = "the lpips package is not installed (pip install lpips)"
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation notes
                self.model = lpips.LPIPS(net=net, verbose=False).eval().to(device)
        except Exception as exc:  # no network, no cached weights, ...
            where = f"{torch.hub.get_dir()}/checkpoints"
            msg = str(exc).splitlines()[0][:160] if str(exc) else ""
            self.reason = (f"LPIPS needs torchvision's ImageNet {net} weights (downloaded once into {where}); "
                           f"they could not be obtained here ({type(exc).__name__}: {msg})")
        self.device = device

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, reference: Tensor, test: Tensor) -> Tensor:
        if self.model is None:
            raise FlowError(f"LPIPS is not available: {self.reason}")
        x, y = _pair(reference, test, "lpips")
        to = lambda t: (t / 127.5 - 1.0).float().to(self.device)
        return self.model(to(x), to(y)).flatten().double().cpu()


def mean_finite(values: Tensor) -> float:
    """Mean over images; ``inf`` (a pixel-identical image) counts as 100 dB so one cannot dominate."""
    v = values.double().clone()
    v[torch.isinf(v) & (v > 0)] = 100.0
    return float(v.mean()) if v.numel() else math.nan
