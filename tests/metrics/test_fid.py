"""FID, KID and IS from features and logits, against closed forms, direct sums and independent
implementations (pytorch-fid, torch-fidelity)."""
import itertools

import numpy as np
import pytest
import torch

from attnflow_core.core import FeatureNetworkError, MetricError
from attnflow_core.metrics import (
    feature_statistics,
    fid_from_features,
    fid_to_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    load_logits_network,
)


def _rotation(d, rng):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


def test_frechet_distance_equals_the_closed_form_for_commuting_covariances():
    # Σ1 = Q diag(a) Qᵀ, Σ2 = Q diag(b) Qᵀ commute: d² = |μ1 − μ2|² + Σ (√a − √b)²
    rng = np.random.default_rng(0)
    d = 16
    q = _rotation(d, rng)
    a, b = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert got == pytest.approx(want, rel=1e-10)
    # one dimension: (m1 − m2)² + (s1 − s2)²
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_frechet_distance_matches_pytorch_fid_on_the_same_features():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(1)
    d = 48
    f1 = rng.normal(size=(400, d)) @ rng.normal(size=(d, d))  # correlated, non-commuting covariances
    f2 = rng.gamma(2.0, size=(300, d)) @ rng.normal(size=(d, d)) + 0.5
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    assert np.allclose(mu1, f1.mean(0)) and np.allclose(s1, np.cov(f1.T))
    ours = frechet_distance(mu1, s1, mu2, s2)
    theirs = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(theirs, rel=1e-8)
    assert fid_from_features(f1, f2) == pytest.approx(ours, rel=1e-12)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(ours, rel=1e-9)  # symmetric


@pytest.mark.parametrize("n", [10, 40, 90])  # fewer samples than dimensions (the low-rank path), then more
def test_fid_to_statistics_equals_the_general_formula(n):
    rng = np.random.default_rng(6)
    d = 60
    ref = rng.normal(size=(300, d)) @ rng.normal(size=(d, d)) / 4
    f = rng.gamma(1.5, size=(n, d)) @ rng.normal(size=(d, d)) / 4
    mu, s = feature_statistics(ref)
    # rel 1e-7: with n < d, the d × d route takes square roots of d − n round-off-sized eigenvalues
    assert fid_to_statistics(f, mu, s) == pytest.approx(frechet_distance(*feature_statistics(f), mu, s), rel=1e-7)


@pytest.mark.parametrize("n,d", [(500, 32), (20, 64)])  # the second: singular covariances (n < d), as FID's often are
def test_fid_of_a_set_with_itself_is_zero(n, d):
    f = np.random.default_rng(2).normal(size=(n, d)) ** 2
    assert abs(fid_from_features(f, f)) < 1e-6 * max(1.0, np.trace(np.cov(f.T)))
    assert fid_from_features(f, f + 1.0) == pytest.approx(d, rel=1e-6)  # a shift by 1 in every dimension


def test_frechet_distance_refuses_mismatched_or_nonfinite_input():
    with pytest.raises(MetricError, match="do not describe"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(MetricError, match="non-finite"):
        frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(MetricError, match="feature sizes differ"):
        fid_from_features(np.ones((5, 3)), np.ones((5, 4)))


def _kid_direct(x, y):
    """The unbiased MMD² as the double sums of Bińkowski et al., pair by pair."""
    d = x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1.0) ** 3
    m = len(x)
    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (m * m)


def test_kid_equals_the_direct_pairwise_sum_and_torch_fidelity():
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(25, 6)), rng.normal(0.3, 1.2, size=(25, 6))
    mean, std = kernel_inception_distance(x, y, subset_size=25, subsets=1)  # one subset = every feature
    assert mean == pytest.approx(_kid_direct(x, y), rel=1e-10) and std == 0.0
    tf = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=3, kid_subset_size=25,
                                verbose=False, kid_kernel="poly", kid_kernel_poly_degree=3,
                                kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=0)
    assert mean == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-10)


def test_kid_is_unbiased_and_subsets_are_seeded():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))  # the same distribution: E[KID] = 0
    mean, std = kernel_inception_distance(x, y, subset_size=100, subsets=60, seed=1)
    assert std > 0 and abs(mean) < 4 * std / np.sqrt(60)
    assert kernel_inception_distance(x, y, 100, 60, seed=1) == (mean, std)
    far, _ = kernel_inception_distance(x, y + 1.0, 100, 10)
    assert far > 20 * std


def test_kid_refuses_too_few_samples_for_its_subset_size():
    with pytest.raises(MetricError, match=r"subset_size=1000 features in each set, got 500 and 2000"):
        kernel_inception_distance(np.ones((500, 4)), np.ones((2000, 4)))


def test_inception_score_formula():
    from scipy.stats import entropy
    from torch_fidelity.metric_isc import isc_features_to_metric

    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3.0, size=(200, 1008))
    mean, std = inception_score(logits, splits=10)
    # independent: exp(mean KL(p(y|x) || p(y))) per chunk with scipy's entropy
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    chunks = [np.exp(np.mean([entropy(q, c.mean(0)) for q in c])) for c in np.array_split(p, 10)]
    assert mean == pytest.approx(np.mean(chunks), rel=1e-9) and std == pytest.approx(np.std(chunks), rel=1e-7)
    tf = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    assert mean == pytest.approx(tf["inception_score_mean"], rel=1e-10)
    # the two limits: one class for everything → 1; k confident classes used equally → k
    assert inception_score(np.zeros((50, 1008)), 5)[0] == pytest.approx(1.0)
    sharp = np.full((40, 1008), -50.0)
    sharp[np.arange(40), np.arange(40) % 8] = 50.0
    assert inception_score(sharp, 5)[0] == pytest.approx(8.0, rel=1e-6)
    with pytest.raises(MetricError):
        inception_score(np.zeros((5, 10)), splits=10)


def test_is_network_unavailable_offline_says_why(monkeypatch, tmp_path):
    import socket

    def unreachable(*a, **k):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # nothing cached
    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(FeatureNetworkError, match="not cached at .* cannot be reached.*IS cannot be computed"):
        load_logits_network()
    with pytest.raises(FeatureNetworkError, match="downloading was not allowed"):
        load_logits_network(allow_download=False)
