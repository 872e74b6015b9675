"""The sample-quality evaluator: FID, KID and IS of a model's samples against the real data, for any table.

:class:`SampleQuality` draws ``n_samples`` samples at every temperature of its sweep through the model
API every family shares (``model.sample(n, temperature)`` then ``model.to_uint8``), computes their
Inception features (:class:`~attnflow_core.metrics.InceptionFeatures`) and scores them against the
cached statistics of the real data set's train split (:func:`~attnflow_core.metrics.reference_statistics`).
A cell record gets the scores at ``T = 1.0`` (``fid``, ``kid``, ``kid_std``, ``is``, ``is_std``), the
temperature of the sweep with the lowest FID and its scores (``best_temperature``, ``fid_best``, ...;
selected on the same samples, so slightly optimistic), the whole sweep, what was measured with what,
and a picture of samples at both temperatures. The Inception Score is ``None`` with ``is_note`` saying
why wherever the 1008-way classifier cannot be had (:mod:`~attnflow_core.metrics.inception_score`).

A table uses it by listing ``SampleQuality(**settings)`` among its evaluators; its ``load_data`` puts the
data root in ``CellData.extra["data_root"]`` and its cell spec names the ``dataset``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from ..core.errors import FeatureNetworkError, MetricError, NonFiniteError
from ..metrics.fid import check_kid_sizes, fid_to_statistics, kernel_inception_distance
from ..metrics.inception import STANDARD_SIZE, InceptionFeatures
from ..metrics.inception_score import inception_logits, inception_score, load_logits_network
from ..metrics.reference import reference_statistics
from .plots import save_image_panels
from .spec import CellContext, CellData

REPORTED_TEMPERATURE = 1.0


@torch.no_grad()
def draw_samples(model: nn.Module, n: int, temperature: float, batch: int = 500, seed: int = 0) -> Tensor:
    """``n`` samples at ``temperature`` as uint8 images on the CPU (seeded; the global RNG is restored)."""
    model.eval()
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    torch.manual_seed(seed)
    out = []
    try:
        for i in range(0, n, batch):
            x = model.sample(min(batch, n - i), temperature=temperature)
            bad = int((~torch.isfinite(x.flatten(1))).any(1).sum())
            if bad:
                raise NonFiniteError(f"{bad} of {x.shape[0]} samples at temperature {temperature} are not finite")
            out.append(model.to_uint8(x).cpu())
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
    return torch.cat(out)


@dataclass
class SampleQuality:
    """FID / KID / IS of samples at each temperature of ``temperatures`` (which must include 1.0).

    ``n_samples`` per temperature; reference: ``ref_count`` images of the data set's ``ref_split``
    (``None``: all of it); Inception input ``inception_size`` (299: the standard features; smaller is
    faster and labelled as not comparable); KID on ``kid_subsets`` subsets of ``kid_subset_size``;
    IS on ``is_splits`` chunks if ``inception_score`` and the classifier can be had.
    """

    n_samples: int = 10_000
    temperatures: tuple[float, ...] = (1.0,)
    sample_batch: int = 500
    inception_size: int = STANDARD_SIZE
    feature_batch: int = 50
    ref_split: str = "train"
    ref_count: int | None = None
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    is_splits: int = 10
    inception_score: bool = True
    grid: int = 36
    seed: int = 0
    name: str = "sample_quality"

    def __post_init__(self) -> None:
        self.temperatures = tuple(float(t) for t in self.temperatures)
        if REPORTED_TEMPERATURE not in self.temperatures:
            raise MetricError(f"the temperature sweep {self.temperatures} must include {REPORTED_TEMPERATURE} "
                              f"(the temperature every table reports)")
        if self.n_samples < 2 or self.sample_batch < 1:
            raise MetricError(f"n_samples must be >= 2 and sample_batch >= 1, got {self.n_samples}, {self.sample_batch}")
        check_kid_sizes(self.n_samples, self.ref_count if self.ref_count is not None else self.kid_subset_size,
                        self.kid_subset_size)
        if self.inception_score and self.n_samples < self.is_splits:
            raise MetricError(f"IS with {self.is_splits} splits needs at least {self.is_splits} samples, "
                              f"got n_samples={self.n_samples}")

    def settings(self) -> dict[str, Any]:
        """The settings that decide the numbers (JSON-friendly, for a cell spec)."""
        d = asdict(self)
        d.pop("name")
        d["temperatures"] = list(self.temperatures)
        return d

    def _logits_net(self) -> tuple[Any, str]:
        if not self.inception_score:
            return None, "IS not asked for"
        try:
            return load_logits_network(), ""
        except FeatureNetworkError as exc:
            return None, f"IS n/a: {exc}"

    def _setup(self, device: torch.device, dataset: str, data_root: str | None, out_dir: Path):
        """The feature network, the reference statistics (cached beside the runs) and the IS network."""
        extractor = InceptionFeatures(self.inception_size, self.feature_batch, device=device)
        cache = Path(out_dir).parent.parent / "runs" / "inception_stats"
        with threadpool_limits(torch.get_num_threads()):  # BLAS threads beyond the cell's share only spin
            ref = reference_statistics(dataset, self.ref_split, self.ref_count, extractor=extractor,
                                       root=data_root, cache_dir=cache, seed=self.seed)
        check_kid_sizes(self.n_samples, ref.n, self.kid_subset_size)
        return extractor, ref, *self._logits_net()

    def score(self, images: Tensor, extractor: InceptionFeatures, ref, logits_net=None) -> dict[str, Any]:
        """FID, KID (± std) and IS (``None`` without ``logits_net``) of uint8 ``images`` against ``ref``."""
        t0 = time.perf_counter()
        feats = extractor(images)
        with threadpool_limits(torch.get_num_threads()):
            fid = fid_to_statistics(feats, ref.mu, ref.sigma)
            kid, kid_std = kernel_inception_distance(feats, ref.features, self.kid_subset_size, self.kid_subsets,
                                                     seed=self.seed)
        is_mean = is_std = None
        if logits_net is not None:
            is_mean, is_std = inception_score(inception_logits(logits_net, images, device=extractor.device),
                                              self.is_splits)
        return {"fid": fid, "kid": kid, "kid_std": kid_std, "is": is_mean, "is_std": is_std,
                "score_seconds": time.perf_counter() - t0}

    def _provenance(self, extractor: InceptionFeatures, ref, is_note: str) -> dict[str, Any]:
        return {"is_note": is_note, "n_fid_samples": self.n_samples, "fid_reference": ref.source,
                "fid_network": extractor.describe(), "fid_standard_features": extractor.standard}

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        device = next(model.parameters()).device
        extractor, ref, logits_net, is_note = self._setup(device, ctx.spec["dataset"], data.extra.get("data_root"),
                                                          ctx.out_dir)
        sweep, shown = [], {}
        for j, temp in enumerate(self.temperatures):
            t0 = time.perf_counter()
            images = draw_samples(model, self.n_samples, temp, self.sample_batch, seed=self.seed + 1 + j)
            sweep.append({"temperature": temp, "sample_seconds": time.perf_counter() - t0,
                          **self.score(images, extractor, ref, logits_net)})
            shown[temp] = images[:self.grid]
        at_one = next(s for s in sweep if s["temperature"] == REPORTED_TEMPERATURE)
        best = min(sweep, key=lambda s: s["fid"])
        rel = f"samples/{ctx.key}-quality.png"
        save_image_panels({f"T = {REPORTED_TEMPERATURE}": shown[REPORTED_TEMPERATURE],
                           f"T = {best['temperature']} (lowest FID of the sweep)": shown[best["temperature"]]},
                          ctx.out_dir / rel, ctx.spec.get("label", ctx.key))
        return {
            **{k: at_one[k] for k in ("fid", "kid", "kid_std", "is", "is_std")},
            "best_temperature": best["temperature"],
            **{f"{k}_best": best[k] for k in ("fid", "kid", "kid_std", "is", "is_std")},
            **self._provenance(extractor, ref, is_note),
            "sample_quality": {"settings": self.settings(), "sweep": sweep, "reference_seconds": ref.seconds},
            "sample_grid": rel,
        }

    def real_images(self, images: Tensor, ctx: CellContext, data_root: str | None, what: str) -> dict[str, Any]:
        """The same scores for ``n_samples`` real images (e.g. the test split): the floor a model's
        scores are read against at this sample count and feature setting."""
        if len(images) < self.n_samples:
            raise MetricError(f"{what}: {len(images)} images, {self.n_samples} needed")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        extractor, ref, logits_net, is_note = self._setup(device, ctx.spec["dataset"], data_root, ctx.out_dir)
        images = images[:self.n_samples]
        scores = self.score(images, extractor, ref, logits_net)
        rel = f"samples/{ctx.key}-quality.png"
        shown = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))[:self.grid]
        save_image_panels({what: images[shown]}, ctx.out_dir / rel, ctx.spec.get("label", ctx.key))
        return {**scores, **self._provenance(extractor, ref, is_note), "fid_images": what,
                "sample_quality": {"settings": self.settings(), "reference_seconds": ref.seconds},
                "sample_grid": rel}

