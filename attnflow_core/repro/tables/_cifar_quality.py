r"""Table 3's cpu-profile sample quality: the package's FID / KID evaluator plus the bias-corrected FID∞.

FID of ``n`` samples is biased upward, by a term that falls like ``1/n`` (Chong & Forsyth 2020):

.. math:: \mathbb{E}\,\mathrm{FID}_n \approx \mathrm{FID}_\infty + \frac{k}{n}.

:func:`fid_infinity` estimates :math:`\mathrm{FID}_\infty` as they do: FID of seeded random subsets of
``n_i`` of the ``N`` sample features (drawn without replacement) against the fixed reference statistics,
a least-squares line through :math:`(1/n_i, \mathrm{FID}_{n_i})`, and its intercept at :math:`1/n = 0`.
Chong & Forsyth fit ``n`` from 5,000 to 50,000; with ``N = 1,000`` samples (fewer than the 2,048 feature
dimensions, so every sample covariance is rank-deficient) the line is fitted far from its limit: FID∞
here is a rough bias correction, to be read beside KID (unbiased at any ``n``), not instead of it.

:class:`FidInfQuality` is :class:`~attnflow_core.repro.sample_quality.SampleQuality` with ``fid_inf_sizes``:
each scored set (every temperature of the sweep, and the real-data floor) also gets ``fid_inf``,
``fid_inf_slope`` and ``fid_by_n``. The features are computed once; FID, KID and IS are the parent's.

References: Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to find them",
CVPR 2020.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from ...core.errors import MetricError
from ...metrics.fid import fid_to_statistics
from ..sample_quality import REPORTED_TEMPERATURE, SampleQuality


def fid_infinity(features: np.ndarray, mu: np.ndarray, sigma: np.ndarray, sizes: tuple[int, ...],
                 seed: int = 0) -> dict[str, Any]:
    """FID at each subset size of ``sizes`` against ``N(mu, sigma)`` and the intercept of the line in ``1/n``
    (see the module docstring): ``fid_inf``, ``fid_inf_slope`` (``k``) and ``fid_by_n``."""
    sizes = tuple(int(n) for n in sizes)
    if len(set(sizes)) < 2:
        raise MetricError(f"FID∞ needs at least two different subset sizes, got {sizes}")
    if min(sizes) < 2 or max(sizes) > len(features):
        raise MetricError(f"FID∞ subset sizes {sizes} must lie in 2..{len(features)} (the number of features)")
    rng = np.random.default_rng(seed)
    fids = [fid_to_statistics(features[rng.choice(len(features), n, replace=False)], mu, sigma) for n in sizes]
    slope, intercept = np.polyfit(1.0 / np.asarray(sizes, np.float64), np.asarray(fids), 1)
    return {"fid_inf": float(intercept), "fid_inf_slope": float(slope),
            "fid_by_n": [{"n": n, "fid": f} for n, f in zip(sizes, fids)]}


class _Features:
    """Stands in for the feature network once the features are computed (``score`` asks it again)."""

    def __init__(self, features: np.ndarray, device: torch.device):
        self.features, self.device = features, device

    def __call__(self, images: Tensor) -> np.ndarray:
        return self.features


@dataclass
class FidInfQuality(SampleQuality):
    """:class:`~attnflow_core.repro.sample_quality.SampleQuality` plus FID∞ at the subset sizes
    ``fid_inf_sizes`` (:func:`fid_infinity`).

    References: Chong & Forsyth, CVPR 2020 (FID∞)."""

    fid_inf_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        self.fid_inf_sizes = tuple(int(n) for n in self.fid_inf_sizes)
        if len(set(self.fid_inf_sizes)) < 2 or max(self.fid_inf_sizes) > self.n_samples:
            raise MetricError(f"fid_inf_sizes {self.fid_inf_sizes}: at least two different sizes, none above "
                              f"n_samples={self.n_samples}")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "fid_inf_sizes": list(self.fid_inf_sizes)}

    def score(self, images: Tensor, extractor, ref, logits_net=None) -> dict[str, Any]:
        feats = extractor(images)
        out = super().score(images, _Features(feats, extractor.device), ref, logits_net)
        with threadpool_limits(torch.get_num_threads()):
            out.update(fid_infinity(feats, ref.mu, ref.sigma, self.fid_inf_sizes, self.seed))
        return out


def quality_evaluator(settings: dict[str, Any]) -> SampleQuality:
    """The evaluator a cell's ``sample_quality`` settings describe (FID∞ where they name subset sizes)."""
    return FidInfQuality(**settings) if "fid_inf_sizes" in settings else SampleQuality(**settings)


def fid_inf_at_one(rec: dict[str, Any]) -> float:
    """``fid_inf`` of a record at the reported temperature (NaN where it was not measured)."""
    if "fid_inf" in rec:  # a real-data record: one scored set
        return rec["fid_inf"]
    sweep = rec.get("sample_quality", {}).get("sweep", [])
    return next((s.get("fid_inf", float("nan")) for s in sweep if s["temperature"] == REPORTED_TEMPERATURE),
                float("nan"))
