"""SRFlow's state dicts through load_reference: the reference code's own outputs (fixtures made by
andreas128/SRFlow in float64, see tests/fixtures/srflow/README.md) to 1e-10, the released layouts'
key names (CelebA 8×, DF2K 4×/8×, RRDB-only), and clear errors for keys that cannot be placed."""
import gzip
import json
from pathlib import Path

import pytest
import torch

from attnflow_core import CheckpointError
from attnflow_core.models import load_reference
from attnflow_core.models.interop.srflow import reference_decode, reference_encode, reference_nll
from attnflow_core.models.srflow import SRFlowModel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "srflow"
TOL = dict(rtol=0, atol=1e-10)


def _fixture(name, device="cpu"):
    state = torch.load(FIXTURES / f"{name}_state.pt")
    ref = torch.load(FIXTURES / f"{name}_outputs.pt", map_location=device)
    cfg = json.loads(ref["config"])
    model = load_reference(state, family="srflow", dtype=torch.float64,
                           config={"image_shape": (3, cfg["hr"], cfg["hr"]), "rrdb_blocks": cfg["blocks"]}).to(device)
    return model, ref, cfg, ref["hr_uint8"].double() / 255, ref["lr_uint8"].double() / 255


@pytest.fixture(scope="module", params=["x8_l4", "x4_l3"])
def fixture(request, device):
    return _fixture(request.param, device)


def test_layout_is_read_from_the_state_dict(fixture):
    model, _, cfg, _, _ = fixture
    c = model.config
    assert (c.scale, c.levels, c.steps, c.extra_steps, c.nf, c.gc, c.nb, c.hidden, c.correct_splits) == (
        cfg["scale"], cfg["L"], cfg["K"], cfg["extra"], cfg["nf"], cfg["gc"], cfg["nb"], cfg["hidden"], cfg["correct"])
    assert not model.training and not model.is_encoder_frozen()


def test_conditioning_features_equal_the_reference(fixture, device):
    model, ref, cfg, _, lr = fixture
    with torch.no_grad():
        conds = model.conditioner.encode(lr)
    assert len(conds) == cfg["L"]
    for level, c in enumerate(conds, 1):
        torch.testing.assert_close(c, ref[f"cond.level{level}"], **TOL)


def test_log_density_nll_and_latents_equal_the_reference(fixture, device):
    model, ref, _, hr, lr = fixture
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(hr - 0.5, lr), ref["log_prob"], **TOL)
        torch.testing.assert_close(reference_nll(model, hr, lr), ref["nll"], **TOL)
        if device.type == "cpu":  # the reference drew its dequantisation noise from the CPU generator, seeded 7
            torch.manual_seed(7)
            torch.testing.assert_close(reference_nll(model, hr, lr, quant=32), ref["nll_quant32_seed7"], **TOL)
        epses, logdet = reference_encode(model, hr, lr)
    n = sum(k.startswith("eps.") for k in ref)
    assert len(epses) == n
    for i, e in enumerate(epses):
        torch.testing.assert_close(e, ref[f"eps.{i}"], **TOL)
    torch.testing.assert_close(logdet, ref["logdet"], **TOL)


def test_inverse_of_given_latents_equals_the_reference(fixture, device):
    model, ref, _, hr, lr = fixture
    n = sum(k.startswith("given_eps.") for k in ref)
    sr = reference_decode(model, lr, [ref[f"given_eps.{i}"] for i in range(n)])
    torch.testing.assert_close(sr, ref["inverse"], **TOL)
    with torch.no_grad():  # and our own bijection in model space is the same map
        zs, _, _ = model.encode(hr - 0.5, lr)
        torch.testing.assert_close(model.decode(zs, lr) + 0.5, hr, **TOL)
    with pytest.raises(CheckpointError, match="epses"):
        reference_decode(model, lr, [ref["given_eps.0"]])


def _layouts():
    with gzip.open(FIXTURES / "released_layouts.json.gz", "rt") as f:
        return json.load(f)


RELEASED = {"SRFlow_CelebA_8X": (8, 4, 8, (1, 3, 5, 7)), "SRFlow_DF2K_4X": (4, 3, 23, (1, 8, 15, 22)),
            "SRFlow_DF2K_8X": (8, 4, 23, (1, 3, 5, 7)), "RRDB_CelebA_8X": (8, 4, 8, (1, 3, 5, 7)),
            "RRDB_DF2K_4X": (4, 3, 23, (1, 8, 15, 22))}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_layouts_load_with_their_key_names(name):
    # the reference's own key names for each released layout; tensors at nf 4 / hidden 4 (same names as the
    # released sizes, which the fixture also lists) filled with seeded noise
    layouts = _layouts()
    assert [k for k, _ in layouts["small"][name]] == [k for k, _ in layouts["full"][name]]
    g = torch.Generator().manual_seed(0)
    state = {("module." + k if name.startswith("RRDB") else k): torch.randn(s, generator=g, dtype=torch.float64)
             for k, s in layouts["small"][name]}
    torch.manual_seed(3)
    rrdb_only = name.startswith("RRDB")  # the flow's fields then come from config (default: the released L, K)
    model = load_reference(state, family="srflow", dtype=torch.float64,
                           config={"hidden": 4, "steps": 2} if rrdb_only else None)
    c = model.config
    assert (c.scale, c.levels, c.nb, c.rrdb_blocks, c.steps, c.extra_steps, c.correct_splits) == (
        *RELEASED[name], 2 if rrdb_only else 16, 2, False)
    for k, v in model.rrdb.state_dict().items():
        assert torch.equal(v, state[("module." if rrdb_only else "RRDB.") + k]), k
    if rrdb_only:  # the flow keeps a fresh initialisation: the one this seed gives
        torch.manual_seed(3)
        fresh, loaded = SRFlowModel(c).double().state_dict(), model.state_dict()
        for k, v in fresh.items():
            if not k.startswith("conditioner."):
                assert torch.equal(v, loaded[k]), k
    else:  # the first ActNorm carries the [0, 1] → [-1/2, 1/2] shift; the others are (b·e^l, l)
        an = [k[: -len("bias")] for k, _ in layouts["small"][name] if k.endswith("actnorm.bias")]
        first = state[an[0] + "bias"] + 0.5, state[an[0] + "logs"]
        torch.testing.assert_close(model.levels[0].layers[1].bias, first[0] * first[1].exp(), **TOL)
        second = state[an[1] + "bias"], state[an[1] + "logs"]
        torch.testing.assert_close(model.levels[0].layers[3].bias, second[0] * second[1].exp(), **TOL)


def test_keys_that_cannot_be_placed_are_named():
    state = torch.load(FIXTURES / "x8_l4_state.pt")
    ok = {"rrdb_blocks": [0, 2], "image_shape": (3, 16, 16)}
    with pytest.raises(CheckpointError, match="flowUpsamplerNet.layers.3.extra_thing"):
        load_reference({**state, "flowUpsamplerNet.layers.3.extra_thing": torch.zeros(1)}, family="srflow", config=ok)
    with pytest.raises(CheckpointError, match="RRDB.upconv9.weight"):
        load_reference({**state, "RRDB.upconv9.weight": torch.zeros(1)}, family="srflow", config=ok)
    missing = {k: v for k, v in state.items() if k != "flowUpsamplerNet.layers.3.affine.fAffine.2.actnorm.logs"}
    with pytest.raises(CheckpointError, match="fAffine.2.actnorm.logs"):
        load_reference(missing, family="srflow", config=ok)
    with pytest.raises(CheckpointError, match="rrdb_blocks"):  # which blocks feed the flow is not in the file
        load_reference(state, family="srflow", config={"image_shape": (3, 16, 16)})
    with pytest.raises(CheckpointError, match="attention"):
        load_reference(state, family="srflow", config={**ok, "attention": "imap"})
    with pytest.raises(CheckpointError, match="shape"):  # a config that does not fit the tensors
        load_reference(state, family="srflow", config={**ok, "hidden": 6})
    # the unused conv f is the one key it drops
    assert {k for k in state if k.startswith("flowUpsamplerNet.f.")} == {"flowUpsamplerNet.f.0.weight",
                                                                         "flowUpsamplerNet.f.0.bias"}
