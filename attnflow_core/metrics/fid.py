r"""Fréchet Inception Distance and Kernel Inception Distance from features.

**FID** (Heusel et al., NeurIPS 2017): the Fréchet (2-Wasserstein) distance between Gaussians fitted to
two feature sets,

.. math:: d^2 = \lVert\mu_1-\mu_2\rVert^2 + \operatorname{tr}\bigl(\Sigma_1+\Sigma_2
          - 2(\Sigma_1\Sigma_2)^{1/2}\bigr).

``tr (Σ1 Σ2)^{1/2}`` is computed as ``tr (A Σ2 A)^{1/2}`` with ``A = Σ1^{1/2}``: ``Σ1 Σ2`` is similar to
the symmetric PSD matrix ``A Σ2 A`` (``Σ1 Σ2 = A (A Σ2 A) A^{-1}`` where ``A`` is invertible, and by
continuity otherwise), so their eigenvalues agree and the trace of the square root is the sum of the
square roots of ``eigvalsh(A Σ2 A)``. Two symmetric eigendecompositions in float64, no complex
round-off and no ``eps`` fudge for singular covariances (``n < 2048`` samples). FID is biased upward
for finite ``n``: compare FIDs only at equal sample counts.

**KID** (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018): the unbiased estimator of the squared
MMD with the cubic polynomial kernel :math:`k(x, y) = (x^\top y / d + 1)^3`,

.. math:: \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)}\sum_{i\ne j}k(x_i,x_j)
          + \frac{1}{m(m-1)}\sum_{i\ne j}k(y_i,y_j) - \frac{2}{m^2}\sum_{i,j}k(x_i,y_j),

on ``subsets`` random subsets of ``m = subset_size`` features of each set (drawn without replacement,
seeded); KID is the mean over subsets, reported with the standard deviation over subsets (``ddof=0``,
as Bińkowski et al.'s code and torch-fidelity). Unbiased: its expectation does not depend on ``m``.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import MetricError


def _as_features(f: np.ndarray, what: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise MetricError(f"{what}: expected features (N >= 2, D), got shape {f.shape}")
    if not np.isfinite(f).all():
        raise MetricError(f"{what}: {int((~np.isfinite(f)).sum())} non-finite feature values")
    return f


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ``N − 1``) covariance of ``(N, D)`` features, in float64."""
    f = _as_features(features, "feature_statistics")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (the module docstring has the math)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise MetricError(f"frechet_distance: means of shapes {mu1.shape}, {mu2.shape} and covariances of shapes "
                          f"{s1.shape}, {s2.shape} do not describe two Gaussians of one dimension")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise MetricError(f"frechet_distance: {name} has non-finite values")
    a = _psd_sqrt(s1)
    m = a @ s2 @ a
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets (Gaussians fitted to each)."""
    f1, f2 = _as_features(features1, "features1"), _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise MetricError(f"feature sizes differ: {f1.shape[1]} and {f2.shape[1]}")
    return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))


def fid_to_statistics(features: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    r"""FID between a feature set and ``N(mu, sigma)`` (e.g. a data set's cached statistics).

    Equal to ``frechet_distance(*feature_statistics(features), mu, sigma)``, and cheaper when the set has
    fewer samples than dimensions (smoke runs): with :math:`\Sigma_f = BB^\top`, ``B`` the centred
    features over :math:`\sqrt{n-1}` (``d × n``), the non-zero eigenvalues of :math:`\Sigma\Sigma_f`
    are those of the symmetric PSD ``n × n`` matrix :math:`B^\top\Sigma B` (``XY`` and ``YX`` share
    their non-zero eigenvalues), so :math:`\operatorname{tr}(\Sigma\Sigma_f)^{1/2}` needs an ``n × n``
    eigenproblem instead of two ``d × d`` ones.
    """
    f = _as_features(features, "features")
    mu = np.asarray(mu, np.float64)
    sigma = np.asarray(sigma, np.float64)
    n, d = f.shape
    if mu.shape != (d,) or sigma.shape != (d, d):
        raise MetricError(f"features have {d} dimensions but the statistics have shapes {mu.shape}, {sigma.shape}")
    if n >= d:
        return frechet_distance(*feature_statistics(f), mu, sigma)
    mean = f.mean(axis=0)
    b = (f - mean).T / np.sqrt(n - 1)
    m = b.T @ sigma @ b
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())
    diff = mean - mu
    return float(diff @ diff + np.trace(sigma) + float((b * b).sum()) - 2.0 * tr_sqrt)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``k(x, y) = (x·y / d + coef0)^degree`` for all pairs of rows."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD of two equally sized feature sets with the cubic polynomial kernel."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2.0 * kxy.sum() / (m * m))


def check_kid_sizes(n1: int, n2: int, subset_size: int) -> None:
    if subset_size < 2:
        raise MetricError(f"KID subset size must be >= 2, got {subset_size}")
    if min(n1, n2) < subset_size:
        raise MetricError(f"KID needs at least subset_size={subset_size} features in each set, got {n1} and {n2}; "
                          f"draw more samples or lower the subset size (Bińkowski et al. use 1000)")


def kernel_inception_distance(features1: np.ndarray, features2: np.ndarray, subset_size: int = 1000,
                              subsets: int = 100, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD² over ``subsets`` random subsets."""
    f1, f2 = _as_features(features1, "features1"), _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise MetricError(f"feature sizes differ: {f1.shape[1]} and {f2.shape[1]}")
    check_kid_sizes(len(f1), len(f2), int(subset_size))
    if subsets < 1:
        raise MetricError(f"KID needs at least one subset, got subsets={subsets}")
    rng = np.random.default_rng(seed)
    vals = np.array([mmd2_unbiased(f1[rng.choice(len(f1), subset_size, replace=False)],
                                   f2[rng.choice(len(f2), subset_size, replace=False)]) for _ in range(subsets)])
    return float(vals.mean()), float(vals.std())
