"""The multi-scale engine: every family, built from its level description, is bit for bit the model it was
before the engine took its levels in the constructor (issue 18).

The fixture ``tests/fixtures/engine_fingerprints.pt`` was recorded from the base commit 491ee88 (before the
refactor) by running this file as a script (``python tests/models/test_engine.py --write``); per family, at
tiny sizes, seed 0: the state-dict keys, the initial weights and the weights after the data-dependent
initialisation (as sha256 digests of their float64 bytes), ``log_prob`` of a fixed input, ``bits_per_dim``
of fixed uint8 images with fixed noise, and ``sample(3, temperature=0.7)`` (with the condition, for the
conditional families) from a fixed seed, and Full-Glow's left log p; all in float64. The test asserts ``torch.equal`` on every tensor.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

from attnflow_core import FlowError, build_model
from attnflow_core.core.layer import FlowSequence
from attnflow_core.flows.glow import ActNorm, InvConv1x1, Squeeze
from attnflow_core.models.base import DensityFlow, Level, MultiScaleFlow
from attnflow_core.priors import LearnedGaussianPrior, SplitGaussianPrior
from attnflow_core.testing import tiny_cond

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "engine_fingerprints.pt"

_GLOW = dict(family="multiscale", backbone="glow", image_shape=(3, 8, 8), levels=2, steps=2, hidden=8, heads=2)
_SR = dict(family="srflow", image_shape=(3, 16, 16), levels=3, steps=1, hidden=8, nf=4, nb=2, gc=4, heads=2,
           extra_steps=1)
_FG = dict(family="fullglow", image_shape=(1, 20, 20), label_channels=3, levels=2, steps=1, hidden=8, cond_hidden=4)
_RF = dict(family="resflow", image_shape=(1, 4, 4), scales=(1, 1), hidden=8, fc_blocks=1, fc_hidden=8)
FAMILIES = {
    "glow": _GLOW,
    "marflow_affine": dict(_GLOW, backbone="marflow", prior_hidden=4, prior_layers=1),
    "marflow_mixlogistic": dict(_GLOW, backbone="marflow", coupling="mixlogistic", components=2, blocks=1,
                                prior_hidden=4, prior_layers=1, steps=1),
    "glow_imap": dict(_GLOW, attention="imap", position=2),
    "glow_itrans": dict(_GLOW, attention="itrans", position=4, patches=4),
    "srflow": _SR,
    "srflow_itrans": dict(_SR, attention="itrans", position=4, patches=1),
    "srflow_correct_splits": dict(_SR, correct_splits=True),
    "fullglow": _FG,
    "fullglow_imap": dict(_FG, attention="imap", position=1),
    "resflow": _RF,
    "resflow_acf_l2": dict(_RF, attention="acf_l2"),
    "iresnet_idp": dict(_RF, arch="iresnet", logit_alpha=None, coeff=0.9, activation="elu", fc_blocks=0,
                        attention="idp"),
}


def _digests(state: dict) -> dict[str, str]:
    """sha256 (first 64 bits) of each tensor's float64 bytes (bit-for-bit, and keeps the fixture small)."""
    return {k: hashlib.sha256(v.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16] for k, v in state.items()}


def fingerprint(name: str) -> dict:
    """What must not move: keys, weights, log p, bits/dim and samples of one tiny family member."""
    torch.manual_seed(0)
    m = build_model(FAMILIES[name]).double()
    out: dict = {"keys": list(m.state_dict().keys()),
                 "initial": _digests(m.state_dict())}
    gen = torch.Generator().manual_seed(1)
    x8 = torch.randint(0, 256, (4, *m.image_shape), dtype=torch.uint8, generator=gen)
    c4 = tiny_cond(m, 4, generator=gen)
    m.train()
    torch.manual_seed(2)
    with torch.no_grad():
        m.bits_per_dim(x8, c4)  # data-dependent initialisation (ActNorms)
    m.eval()
    out["after_init"] = _digests(m.state_dict())
    x = torch.rand(4, *m.image_shape, dtype=torch.float64, generator=gen) - 0.5
    with torch.no_grad():
        torch.manual_seed(3)
        out["log_prob"] = m.log_prob(x, c4)
        # Full-Glow: the left Glow's log p of the label map too (the joint loss's other half)
        out["joint_left"] = m.joint_log_prob(x, c4)[0] if hasattr(m, "joint_log_prob") else x.new_zeros(0)
        torch.manual_seed(4)
        out["bits_per_dim"] = m.bits_per_dim(x8, c4)
        c3 = tiny_cond(m, 3, generator=gen)
        torch.manual_seed(5)
        out["sample"] = m.sample(3, temperature=0.7) if c3 is None else m.sample(3, temperature=0.7, cond=c3)
    return out


@pytest.fixture(scope="module")
def recorded():
    return torch.load(FIXTURE, weights_only=True)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_is_bit_for_bit_the_recorded_model(name, recorded):
    want, got = recorded[name], fingerprint(name)
    assert got["keys"] == want["keys"]
    for part in ("initial", "after_init"):
        for k in want["keys"]:
            assert got[part][k] == want[part][k], f"{part} weights differ: {k}"
    for part in ("log_prob", "joint_left", "bits_per_dim", "sample"):
        assert got[part].dtype == torch.float64
        assert torch.equal(got[part], want[part]), f"{part}: max diff {(got[part] - want[part]).abs().max()}"


def _level(c, *more):
    """squeeze → ActNorm → 1×1 conv on the ``4c`` squeezed channels."""
    return FlowSequence([Squeeze(), ActNorm(4 * c), InvConv1x1(4 * c)]), *more


def test_the_engine_infers_its_shapes_from_the_level_descriptions():
    """Three levels from a 1×8×8 image: a split (keep 2 of 4), a level that does not split (8 channels go
    on), the top (32 channels at 1×1, all latent)."""
    torch.manual_seed(0)
    m = MultiScaleFlow((1, 8, 8), [Level(*_level(1, 2, SplitGaussianPrior(2, 2))), Level(*_level(2, None)),
                                   Level(*_level(8, 0, LearnedGaussianPrior(32)))]).double()
    assert m.level_shapes == [(4, 4, 4), (8, 2, 2), (32, 1, 1)]
    assert m.latent_shapes == [(2, 4, 4), None, (32, 1, 1)]
    assert m.keep == [2, 8, 0]
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) - 0.5
    with torch.no_grad():
        for p in m.parameters():  # away from the identity start
            p.add_(0.1 * torch.randn_like(p))
        zs, ctx, logdet = m.encode(x)
        assert [None if z is None else tuple(z.shape[1:]) for z in zs] == m.latent_shapes
        assert ctx[0].shape[1:] == (2, 4, 4) and ctx[1] is None and ctx[2] is None
        assert float((m.decode(zs) - x).abs().max()) < 1e-12
        lp = m.log_prob(x)
        want = logdet + m.priors[0].log_prob(zs[0], ctx[0]) + m.priors[2].log_prob(zs[2])
        torch.testing.assert_close(lp, want, rtol=0, atol=1e-12)
        assert m.sample(2, temperature=0.5).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("levels,what", [
    (lambda: [Level(*_level(1, 2, SplitGaussianPrior(2, 2)))], "level 1 of 1"),  # the top level splits
    (lambda: [Level(*_level(1, 0, LearnedGaussianPrior(4))), Level(*_level(4, 0, LearnedGaussianPrior(16)))],
     "level 1 of 2"),  # a top-level rule below the top
    (lambda: [Level(*_level(1, None, SplitGaussianPrior(2, 2))), Level(*_level(1, 0, LearnedGaussianPrior(16)))],
     "level 1 of 2"),  # a prior on a level that factors nothing out
    (lambda: [Level(*_level(1, 4, SplitGaussianPrior(2, 2))), Level(*_level(1, 0, LearnedGaussianPrior(16)))],
     "level 1 of 2"),  # keeps every channel but claims a split
    (lambda: [Level(*_level(1, 0))], "level 1 of 1"),  # a top level without a prior
])
def test_a_bad_level_description_is_refused_naming_the_level(levels, what):
    with pytest.raises(FlowError, match=rf"{what} \(\d+ channels\) has keep="):
        MultiScaleFlow((1, 8, 8), levels())


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_samples_through_the_one_signature(name):
    """sample(n, temperature, cond) is the engine's for every family (no family overrides it), and the
    engine has no prior-routing flag (priors see only their context)."""
    with torch.device("meta"):
        m = build_model(FAMILIES[name])
    assert isinstance(m, MultiScaleFlow) and type(m).sample is DensityFlow.sample
    assert not hasattr(m, "_priors_use_cond")


if __name__ == "__main__" and "--write" in sys.argv:
    torch.set_num_threads(1)
    torch.save({name: fingerprint(name) for name in FAMILIES}, FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
