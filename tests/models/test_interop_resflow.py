"""Residual Flows checkpoints through ``load_reference``: the fixture computed by rtqichen/residual-flows
itself (tests/fixtures/resflow/README.md) is matched to 1e-10 in float64 (latents, exact log p, bits/dim,
inverse), and the official checkpoint layout (``state_dict``, ``ema``, ``args``) is read."""
import argparse
import math
import sys
import types
from pathlib import Path

import pytest
import torch

from attnflow_core.core.errors import CheckpointError
from attnflow_core.models import load_reference
from attnflow_core.models.interop.resflow import from_reference_space, read_checkpoint

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "resflow" / "resflow_3x8x8.pt"


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def model(fx, device):
    return load_reference(fx["state_dict"], family="resflow").to(device)


def test_inferred_architecture_and_every_reference_weight_used_as_it_is(model):
    cfg = model.config
    assert (cfg.image_shape, cfg.scales, cfg.hidden, cfg.fc_blocks, cfg.fc_hidden) == ((3, 8, 8), (2, 1), 8, 4, 16)
    assert cfg.logdet["lam"] == 2.0 and cfg.logit_alpha == 0.05
    assert model.reference_report["extra_shrink"] == 1.0  # no reference weight shrunk again by our certificate
    assert all(b <= 0.9800001 ** 3 for b in model.lipschitz_certificates().values())


def test_latents_and_exact_log_density_match_the_reference(fx, model, device):
    out = {k: v.to(device) for k, v in fx["outputs"].items()}
    x = from_reference_space(out["x"])
    with torch.no_grad():
        zs, _, _ = model.encode(x)
    assert float((zs[-1].flatten(1) - out["z"]).abs().max()) < 1e-10
    exact = load_reference(fx["state_dict"], family="resflow",
                           config={**model.config.to_dict(), "coeff": 0.98, "logdet": {"method": "exact"}}).to(device)
    lp = exact.log_prob(x).detach()
    assert float((lp - out["logpx"]).abs().max()) < 1e-10
    D = 3 * 8 * 8
    bpd = -(lp - D * math.log(256)) / (D * math.log(2))  # what bits_per_dim computes after dequantising
    assert float((bpd - out["bpd"]).abs().max()) < 1e-10


def test_inverse_of_given_latents_matches_the_reference(fx, model, device):
    out = {k: v.to(device) for k, v in fx["outputs"].items()}
    with torch.no_grad():  # one latent of 12×4×4 (no factoring out), as the reference's flattened z
        xs = model.decode([None, out["z_given"].view(-1, 12, 4, 4)])
    ref = from_reference_space(out["x_inverse"])
    # ours clamps the logit transform's inverse to model space (a deliberate deviation: log_prob(sample(n)) must
    # be defined); random latents reach outside it, where the reference returns values beyond ±1/2
    assert bool((ref.abs() > 0.5).any())
    assert float((xs - ref.clamp(-0.5, 0.5)).abs().max()) < 1e-10


def _fabricated(fx, extra=None):
    """A checkpoint in train_img.py's layout: EMA weights differ from the training ones."""
    sd = dict(fx["state_dict"])
    shadow = {k: v.clone() for k, v in sd.items() if k.endswith((".weight", ".bias", ".beta", "geom_p", "lamb"))}
    for k in shadow:
        if k.endswith(".beta"):
            shadow[k] = shadow[k] + 0.1
    ema = types.SimpleNamespace(shadow_params=shadow, decay=0.999)
    args = argparse.Namespace(data="cifar10", coeff=0.98, n_dist="poisson", n_exact_terms=2, n_samples=1,
                              sn_tol=1e-3, logit_transform=True, factor_out=False, squeeze_first=False, padding=0)
    return {"state_dict": {**sd, **(extra or {})}, "ema": ema, "args": args, "test_bpd": 9.0}


def test_official_layout_with_ema_weights(fx):
    ck = _fabricated(fx)
    ema = load_reference(ck, family="resflow")
    train = load_reference(ck, family="resflow", weights="train")
    assert ema.reference_report["weights"] == "ema" and train.reference_report["weights"] == "train"
    beta = "levels.0.layers.2.g.net.1.beta_raw"
    ref = "transforms.0.chain.2.nnet.1.beta"
    assert torch.equal(ema.state_dict()[beta], ck["ema"].shadow_params[ref].reshape(1))
    assert torch.equal(train.state_dict()[beta], fx["state_dict"][ref].reshape(1))


def test_unplaceable_keys_and_bad_states_are_named(fx):
    with pytest.raises(CheckpointError, match="transforms.0.chain.2.nnet.0.extra"):
        load_reference(_fabricated(fx, {"transforms.0.chain.2.nnet.0.extra": torch.zeros(1)}), family="resflow")
    sd = dict(fx["state_dict"])
    sd["transforms.0.chain.1.initialized"] = torch.tensor(0)
    with pytest.raises(CheckpointError, match="never initialised"):
        load_reference(sd, family="resflow")
    with pytest.raises(CheckpointError, match="do not match"):
        load_reference(fx["state_dict"], family="resflow", config={"image_shape": (3, 8, 8), "scales": (1, 1),
                                                                     "hidden": 8, "fc_hidden": 16})
    args = argparse.Namespace(factor_out=True)
    with pytest.raises(CheckpointError, match="factor-out"):
        load_reference({"state_dict": fx["state_dict"], "args": args}, family="resflow")


def test_a_file_with_the_reference_classes_pickled_is_read_without_its_code(fx, tmp_path):
    mod = types.ModuleType("lib.utils")

    class ExponentialMovingAverage:  # stands for the reference's class of the same name
        pass

    ExponentialMovingAverage.__module__ = "lib.utils"
    ExponentialMovingAverage.__qualname__ = "ExponentialMovingAverage"
    mod.ExponentialMovingAverage = ExponentialMovingAverage
    ema = ExponentialMovingAverage()
    ema.shadow_params = {k: v for k, v in fx["state_dict"].items() if k.endswith(".weight")}
    sys.modules["lib"], sys.modules["lib.utils"] = types.ModuleType("lib"), mod
    try:
        torch.save({"state_dict": fx["state_dict"], "ema": ema}, tmp_path / "ck.pth")
    finally:
        del sys.modules["lib"], sys.modules["lib.utils"]
    ck = read_checkpoint(tmp_path / "ck.pth")
    assert set(ck["ema"].shadow_params) == set(ema.shadow_params)
    assert load_reference(ck, family="resflow").reference_report["weights"] == "ema"
    # the same file straight through load_reference (the family's own reader, not plain torch.load)
    assert load_reference(tmp_path / "ck.pth", family="resflow").reference_report["weights"] == "ema"
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_reference(tmp_path / "missing.pth", family="resflow")
