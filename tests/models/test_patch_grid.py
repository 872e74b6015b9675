"""The patch grid of iTrans in whole multi-scale models: ``patches="auto"`` resolved per level at build
time (standard MNIST with the paper's 4 patches where the map allows), visible in the model and the
config, and clear errors for grids that cannot be built."""
import pytest
import torch

from attnflow_core import FlowError, ITrans, build_model
from attnflow_core.core import flatten_latents
from attnflow_core.models import FlowConfig
from attnflow_core.testing import jacobian_logdets, prepare_model

MNIST = dict(backbone="glow", coupling="affine", image_shape=(1, 28, 28), levels=2, steps=1, hidden=8,
             attention="itrans", heads=1)


def _itrans_grids(model):
    return [[m.grid for m in level.modules() if isinstance(m, ITrans)] for level in model.levels]


def test_standard_mnist_builds_with_auto_patches():
    cfg = FlowConfig(**dict(MNIST, steps=2), patches="auto")
    assert cfg.patch_grids() == [(2, 2), (1, 1)]  # 14×14 takes the paper's 2×2; 7×7 only 1×1
    model = build_model(cfg)
    assert model.patch_grids == [(2, 2), (1, 1)]
    assert _itrans_grids(model) == [[(2, 2), (2, 2)], [(1, 1), (1, 1)]]
    assert "grid=2×2 (patches='auto' on 14×14)" in repr(model.levels[0])


def test_auto_model_is_exact(device):
    model = build_model(dict(MNIST, patches="auto", image_shape=(1, 12, 12))).to(device, torch.float64)  # 6×6 → 2×2, 3×3 → 1×1
    assert model.patch_grids == [(2, 2), (1, 1)]
    x = (torch.rand(3, 1, 12, 12, dtype=torch.float64) - 0.5).to(device)
    prepare_model(model, x)
    zs, _, logdet = model.encode(x)
    assert (model.decode(zs) - x).abs().max() < 1e-10
    expected = jacobian_logdets(lambda t: flatten_latents(model.encode(t)[0]), x[:2])
    torch.testing.assert_close(logdet[:2], expected, rtol=1e-6, atol=1e-8)
    assert torch.isfinite(model.log_prob(x)).all()


def test_auto_survives_the_config_round_trip():
    cfg = FlowConfig(**MNIST, patches="auto:16")
    d = cfg.to_dict()
    assert d["patches"] == "auto:16"
    again = FlowConfig.from_dict(d)
    assert again == cfg and again.patch_grids() == [(2, 2), (1, 1)]  # 14: 4 does not divide, 2 does


def test_exact_patches_that_do_not_divide_fail_at_validate_with_the_way_out():
    with pytest.raises(FlowError, match=r"7×7 map into a 2×2 grid.*patches='auto'"):
        FlowConfig(**MNIST, patches=4).validate()
    with pytest.raises(FlowError, match="7×7 map"):
        build_model(dict(MNIST, patches=4))
    assert FlowConfig(**MNIST, patches=49).patch_grids() == [(7, 7), (7, 7)]  # what builds exactly


@pytest.mark.parametrize("patches, match", [("auto:5", "square"), ("many", "patch count"), (True, "must be an int"),
                                            ([2, 2], "square count or 'auto'"), (0, "square")])
def test_bad_patches_in_a_config_are_refused(patches, match):
    with pytest.raises(FlowError, match=match):
        FlowConfig(**dict(MNIST, patches=patches)).validate()


def test_without_itrans_no_grid_and_old_defaults_unchanged():
    assert FlowConfig(**dict(MNIST, attention="imap"), patches=4).patch_grids() == [None, None]
    cfg = FlowConfig(image_shape=(3, 8, 8), levels=2, attention="itrans")  # the default patches=4
    assert cfg.patches == 4 and cfg.patch_grids() == [(2, 2), (2, 2)]


@pytest.mark.parametrize("family, extra", [("srflow", dict(nf=8, nb=1, gc=8)), ("fullglow", dict(cond_hidden=8))])
def test_conditional_families_resolve_auto_per_level_and_refuse_grids_that_do_not_divide(family, extra):
    # 3×40×40 (8× SR: LR 5×5): the maps are 20×20 and 10×10, so "auto:16" gives 4×4 then 2×2; an exact
    # 4×4 cannot cut 10×10
    cfg = dict(family=family, image_shape=(3, 40, 40), levels=2, steps=1, hidden=8, attention="itrans", **extra)
    model = build_model(dict(cfg, patches="auto:16"))
    grids = [m.grid for m in model.modules() if type(m).__name__ == "ITrans"]
    assert (4, 4) in grids and (2, 2) in grids
    with pytest.raises(FlowError, match="10×10 map"):
        build_model(dict(cfg, patches=16))
