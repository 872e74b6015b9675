"""mar-scf checkpoints on our mARFlow: fixtures computed by the reference code (tests/fixtures/marscf/README.md)."""
from pathlib import Path

import pytest
import torch

from attnflow_core import CheckpointError, FlowError
from attnflow_core.models import FlowModel, load_reference
from attnflow_core.models.interop.marscf import MarScfScoredFlow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "marscf"
TOL = dict(atol=1e-10, rtol=0)


@pytest.fixture(scope="module", params=["affine", "mixlogistic"])
def fixture(request, device):
    return torch.load(FIXTURES / f"{request.param}.pt", weights_only=True, map_location=device)


def _load(f, device="cpu", **kw):
    cfg = {"image_shape": f["config"]["image_shape"]}
    return load_reference(f["state_dict"], family="marscf", config=cfg, **kw).to(device)


def test_the_reference_numbers_are_reproduced(fixture, device):
    model = _load(fixture, device)
    assert model.config.coupling == fixture["config"]["coupling"].replace("mixlogcdf", "mixlogistic")
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(fixture["x"]), fixture["log_prob"], **TOL)
        zs, _, _ = model.encode(fixture["x"])
        for ours, theirs in zip(zs, fixture["latents"], strict=True):
            torch.testing.assert_close(ours, theirs, **TOL)
        torch.testing.assert_close(model.decode(fixture["given_latents"]), fixture["inverse"], **TOL)


def test_scoring_in_the_reference_conventions_gives_its_bits_per_dim(fixture, device):
    theirs = _load(fixture, device, scoring="marscf")
    assert isinstance(theirs, MarScfScoredFlow)
    with torch.no_grad():
        torch.testing.assert_close(theirs.bits_per_dim(fixture["pixels"], noise=fixture["noise"]),
                                   fixture["bits_per_dim"], **TOL)
        ours = _load(fixture, device).bits_per_dim(fixture["pixels"], noise=False)
    assert not torch.allclose(ours, fixture["bits_per_dim"], atol=1e-4)  # the conventions differ


def test_parameter_gap_is_exactly_the_unused_top_condition_net(fixture):
    sd = fixture["state_dict"]
    top = len({k.split(".")[3] for k in sd if k.startswith("flow.c_prior.prior_list.")}) - 1
    unused = sum(v.numel() for k, v in sd.items() if k.startswith(f"flow.c_prior.prior_list.{top}.z1_cond_network."))
    assert unused > 0
    assert _load(fixture).num_parameters() == fixture["reference_parameters"] - unused


def test_the_mixture_fixture_pins_the_marscf_coupling_form(device):
    f = torch.load(FIXTURES / "mixlogistic.pt", weights_only=True, map_location=device)
    model = _load(f, device)
    for layer in model.modules():
        if hasattr(layer, "form"):
            layer.form = "flowpp"  # Flow++ paper's y = ℓ·e^a + t: same weights, another function
    with torch.no_grad():
        assert (model.log_prob(f["x"]) - f["log_prob"]).abs().max() > 1e-3


def test_official_key_layouts_load_and_bad_checkpoints_are_named():
    f = torch.load(FIXTURES / "affine.pt", weights_only=True)
    sd, cfg = f["state_dict"], {"image_shape": f["config"]["image_shape"]}
    wrapped = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}  # DataParallel-saved, in a wrapper
    model = load_reference(wrapped, family="marscf", config=cfg)
    assert isinstance(model, FlowModel) and next(model.parameters()).dtype == torch.float64
    with pytest.raises(CheckpointError, match=r"cannot place: flow\.layers\.1\.extra"):
        load_reference({**sd, "flow.layers.1.extra": torch.zeros(1)}, family="marscf", config=cfg)
    missing = {k: v for k, v in sd.items() if not k.endswith("prior_list.0.prior_lstm.conv_out1.bias")}
    with pytest.raises(CheckpointError, match="conv_out1.bias"):
        load_reference(missing, family="marscf", config=cfg)
    with pytest.raises(CheckpointError, match="hidden: config 16, checkpoint 8"):
        load_reference(sd, family="marscf", config={**cfg, "hidden": 16})
    with pytest.raises(CheckpointError, match="mar-scf MarScfFlow state dict"):
        load_reference({"weight": torch.zeros(1)}, family="marscf")


def test_the_config_chooses_the_coupling_form_and_marscf_is_the_default():
    from attnflow_core import FlowConfig, build_model

    small = dict(image_shape=(1, 8, 8), levels=2, steps=1, hidden=8, coupling="mixlogistic", components=3, blocks=1)
    assert FlowConfig().mixlogistic_form == "marscf"
    forms = {m.form for m in build_model(dict(small, mixlogistic_form="flowpp")).modules() if hasattr(m, "form")}
    assert forms == {"flowpp"}
    with pytest.raises(FlowError, match="mixlogistic_form"):
        build_model(dict(small, mixlogistic_form="glow"))
