"""Inception features and statistics of the real data, cached on disk.

The cache file is keyed by everything that decides its numbers: the data set, the split, the number of
images (a seeded subset of the split, or all of it), the subset seed, the Inception input size and resize,
and the network's sha256. It holds the float32 features (KID needs them) and the float64 mean and
covariance (FID), written atomically; a file lock lets parallel cells wait for one computation
instead of repeating it.
"""
from __future__ import annotations

import fcntl
import io
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import MetricError
from ..core.io import write_bytes
from ..data.registry import load_dataset
from .fid import feature_statistics
from .inception import RESIZE, InceptionFeatures


@dataclass
class ReferenceStats:
    """Features, mean and covariance of ``n`` real images (``source`` says which)."""

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    source: str
    path: Path | None = None
    seconds: float = 0.0  # time spent computing them now (0 when read from the cache)


def default_cache_dir() -> Path:
    """``$ATTNFLOW_CACHE/inception`` if set, else ``~/.cache/attnflow/inception``."""
    base = os.environ.get("ATTNFLOW_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "attnflow") / "inception"


def reference_key(dataset: str, split: str, n: int, seed: int, extractor: InceptionFeatures) -> str:
    return f"{dataset}-{split}-n{n}-seed{seed}-{extractor.size}px-{RESIZE}-{extractor.sha256[:16]}"


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def reference_statistics(dataset: str, split: str = "train", count: int | None = None, *,
                         extractor: InceptionFeatures, root: str | os.PathLike | None = None,
                         cache_dir: str | os.PathLike | None = None, seed: int = 0) -> ReferenceStats:
    """Statistics of ``count`` images of ``split`` of ``dataset`` (a seeded subset; ``None``: the whole split).

    Read from ``cache_dir`` (default :func:`default_cache_dir`) when present, else computed and written
    there atomically. The data come from :func:`~attnflow_core.data.load_dataset` (``root``: data root),
    so a missing data set raises :class:`~attnflow_core.core.errors.DataNotFoundError` naming where it
    looked and how to get it.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if count is not None and count < 2:
        raise MetricError(f"reference statistics need at least 2 images, got count={count}")
    # the key names the number of images actually used, so "all" and an explicit full count share a file
    data = None
    n = count
    if count is None:
        data = load_dataset(dataset, split, root=root)
        n = len(data)
    key = reference_key(dataset, split, int(n), seed, extractor)
    path = cache / f"{key}.npz"
    with _locked(cache / f".{key}.lock"):
        if path.is_file():
            with np.load(path) as z:
                return ReferenceStats(z["features"], z["mu"], z["sigma"], int(z["n"]), str(z["source"]), path)
        t0 = time.perf_counter()
        if data is None:
            data = load_dataset(dataset, split, root=root, limit=count, seed=seed)
        if len(data) < n:
            raise MetricError(f"{dataset} {split} has {len(data)} images; {n} were asked for the reference statistics")
        feats = extractor(data.images)
        mu, sigma = feature_statistics(feats)
        source = f"{dataset} {split} (n={len(feats)}, seed {seed})"
        buf = io.BytesIO()
        np.savez(buf, features=feats, mu=mu, sigma=sigma, n=len(feats), source=source)
        write_bytes(path, buf.getvalue())
        return ReferenceStats(feats, mu, sigma, len(feats), source, path, time.perf_counter() - t0)
