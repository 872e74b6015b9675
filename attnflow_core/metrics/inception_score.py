r"""Inception Score (Salimans et al., NeurIPS 2016) from the standard 1008-way Inception logits.

.. math:: \mathrm{IS} = \exp\bigl(\mathbb{E}_x\,\mathrm{KL}(p(y\mid x)\,\Vert\,p(y))\bigr),
          \quad p(y) = \mathbb{E}_x\,p(y\mid x),

computed on ``splits`` consecutive chunks of the samples (10, as the original code), reported as the
mean and standard deviation (``ddof=0``) over chunks. ``p(y | x)`` is the softmax of the TF Inception
(2015-12-05) classifier's 1008 logits *without* its bias ("logits_unbiased"), as the original code
computes them.

The offline network of :mod:`~attnflow_core.metrics.inception` stops at pool3 (no classifier), so IS
needs the full network: :func:`load_logits_network` takes it from torch-fidelity, which downloads its
weights (``weights-inception-2015-12-05-6726825d.pth``) into torch's hub cache on first use. Where
they cannot be had it raises :class:`~attnflow_core.core.errors.FeatureNetworkError` with the reason,
and a table shows IS as ``n/a`` with that reason — never a score from another network.
"""
from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from ..core.errors import FeatureNetworkError, MetricError

LOGITS = 1008


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS (mean, std over ``splits`` chunks, in order) from ``(N, 1008)`` Inception logits."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if z.dim() != 2 or z.shape[0] < splits or splits < 1:
        raise MetricError(f"inception_score needs logits (N >= splits, K) and splits >= 1; got shape "
                          f"{tuple(z.shape)} and splits={splits}")
    if not bool(torch.isfinite(z).all()):
        raise MetricError("inception_score: non-finite logits")
    log_p = torch.log_softmax(z, dim=1)
    n = z.shape[0]
    scores = []
    for i in range(splits):
        lp = log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = torch.logsumexp(lp, dim=0) - np.log(lp.shape[0])  # log p(y) of the chunk
        kl = (lp.exp() * (lp - log_marginal)).sum(dim=1).mean()
        scores.append(float(torch.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def _weights_url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def cached_weights_path() -> Path:
    """Where torch's hub cache keeps torch-fidelity's Inception weights once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(_weights_url()).path).name


def load_logits_network(allow_download: bool = True, timeout: float = 10.0):
    """torch-fidelity's TF-compatible Inception returning the 1008 unbiased logits of uint8 images, or
    :class:`FeatureNetworkError` saying why it cannot be had (not installed, not cached and the download
    host unreachable, download failed)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as exc:
        raise FeatureNetworkError("IS needs the 1008-way Inception classifier from torch-fidelity, which is not "
                                  "installed (`pip install torch-fidelity`)") from exc
    url = _weights_url()
    cached = cached_weights_path()
    if not cached.is_file():
        if not allow_download:
            raise FeatureNetworkError(f"the 1008-way Inception classifier weights are not cached at {cached} and "
                                      f"downloading was not allowed")
        host = urlparse(url).hostname or ""
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError as exc:
            raise FeatureNetworkError(
                f"the 1008-way Inception classifier weights (torch-fidelity, {url}) are not cached at {cached} "
                f"and {host} cannot be reached ({type(exc).__name__}: {exc}); the offline pool3 network has no "
                f"classifier, so IS cannot be computed here") from exc
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                          feature_extractor_weights_path=str(cached) if cached.is_file() else None)
    except Exception as exc:  # a failed download or an unreadable file
        raise FeatureNetworkError(f"loading the 1008-way Inception classifier ({url}) failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
    return net


@torch.inference_mode()
def inception_logits(net, images: torch.Tensor, batch_size: int = 50, device: str | torch.device = "cpu",
                     progress: bool = True) -> np.ndarray:
    """``(N, 1008)`` unbiased logits of uint8 images ``(N, 1 or 3, H, W)`` (grey is copied to three
    channels; torch-fidelity resizes to 299×299 itself)."""
    from tqdm.auto import tqdm

    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise MetricError(f"inception_logits expects uint8 images (N, 1 or 3, H, W), got {images.dtype} "
                          f"{tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    net = net.to(device)
    out = []
    for i in tqdm(range(0, len(images), batch_size), disable=not progress, desc="Inception logits", leave=False):
        (z,) = net(images[i:i + batch_size].to(device))
        out.append(z.double().cpu().numpy())
    return np.concatenate(out)
