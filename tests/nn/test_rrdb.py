"""SRFlow's RRDB encoder: the reference's parameter count and module names, the feature maps and their sizes,
and the features of the reference code itself (fixtures in tests/fixtures/srflow, see its README)."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from attnflow_core import FlowError
from attnflow_core.nn import RRDBNet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "srflow"


def test_rrdb_has_the_reference_parameter_count_and_names():
    with torch.device("meta"):
        net = RRDBNet(nf=64, nb=8, gc=32)
    assert sum(p.numel() for p in net.parameters()) == 5_943_555  # andreas128/SRFlow's RRDB
    keys = set(net.state_dict())
    # the reference's names, so a state dict of its (pretrained) RRDB loads unchanged
    for k in ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "RRDB_trunk.7.RDB3.conv5.bias",
              "trunk_conv.weight", "upconv1.bias", "upconv2.weight", "upconv3.weight", "HRconv.weight", "conv_last.bias"):
        assert k in keys, k
    with torch.device("meta"):
        net4 = RRDBNet(nf=64, nb=8, gc=32, scale=4)  # 4× (DF2K): the same without upconv3
    assert sum(p.numel() for p in net4.parameters()) == 5_943_555 - (64 * 64 * 9 + 64)
    assert "upconv3.weight" not in net4.state_dict()
    with pytest.raises(FlowError, match="scale=16"):
        RRDBNet(nf=4, nb=1, gc=2, scale=16)


def test_feature_maps_have_the_scales_of_8x_sr(device, dtype):
    torch.manual_seed(0)
    net = RRDBNet(nf=4, nb=3, gc=2).to(device, dtype)
    lr = torch.rand(2, 3, 4, 6).to(device, dtype)
    f = net.features(lr, blocks=(0, 2), rgb=True)
    sizes = {k: tuple(v.shape[1:]) for k, v in f.items()}
    assert sizes == {"block_0": (4, 4, 6), "block_2": (4, 4, 6), "last_lr_fea": (4, 4, 6), "fea_up1": (4, 4, 6),
                     "fea_up0": (4, 2, 3), "fea_up2": (4, 8, 12), "fea_up4": (4, 16, 24), "fea_up8": (4, 32, 48),
                     "out": (3, 32, 48)}
    assert net(lr).shape == (2, 3, 32, 48)
    # SRFlow's trunk output: last block + trunk_conv(last block), not ESRGAN's skip from conv_first
    torch.testing.assert_close(f["last_lr_fea"], f["block_2"] + net.trunk_conv(f["block_2"]))
    torch.testing.assert_close(f["fea_up0"], torch.nn.functional.avg_pool2d(f["last_lr_fea"], 2))  # bilinear ½
    # the stored maps are post-activation (the reference's in-place LeakyReLU overwrites what it returns)
    up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(f["fea_up2"], F.leaky_relu(net.upconv1(up(f["last_lr_fea"])), 0.2))
        torch.testing.assert_close(f["fea_up4"], F.leaky_relu(net.upconv2(up(f["fea_up2"])), 0.2))
        torch.testing.assert_close(f["fea_up8"], F.leaky_relu(net.upconv3(up(f["fea_up4"])), 0.2))
        torch.testing.assert_close(f["out"], net.conv_last(F.leaky_relu(net.HRconv(f["fea_up8"]), 0.2)))
    q = RRDBNet(nf=4, nb=1, gc=2, scale=4).to(device, dtype).features(torch.rand(1, 3, 8, 8).to(device, dtype), rgb=True,
                                                                    quarter=True)
    assert {k: tuple(v.shape[2:]) for k, v in q.items()} == {"last_lr_fea": (8, 8), "fea_up1": (8, 8), "fea_up0": (4, 4),
                                                            "fea_up-1": (2, 2), "fea_up2": (16, 16), "fea_up4": (32, 32),
                                                            "out": (32, 32)}


@pytest.mark.parametrize("name", ["x8_l4", "x4_l3"])
def test_features_equal_the_reference_codes(name, device):
    # SRFlow's RRDBNet run on its own seeded weights (float64): every map it returns, RGB output included
    state = torch.load(FIXTURES / f"{name}_state.pt")
    ref = torch.load(FIXTURES / f"{name}_outputs.pt")
    cfg = json.loads(ref["config"])
    kw = {} if cfg["scale"] == 8 else {"scale": cfg["scale"]}  # 8× is the default
    net = RRDBNet(cfg["nf"], cfg["nb"], cfg["gc"], **kw).to(device, torch.float64)
    net.load_state_dict({k[5:]: v.double() for k, v in state.items() if k.startswith("RRDB.")})
    with torch.no_grad():
        f = net.features(ref["lr_uint8"].to(device).double() / 255, tuple(cfg["blocks"]), rgb=True)
    names = [k[5:] for k in ref if k.startswith("feat.")]
    assert set(names) == set(f), (names, sorted(f))
    for k in names:
        torch.testing.assert_close(f[k].cpu(), ref[f"feat.{k}"], rtol=0, atol=1e-10, msg=k)


def test_dense_blocks_start_near_their_skip_paths(device, dtype):
    # each RDB returns 0.2·conv5(…) + x with conv weights ×0.1, so RDB(x) ≈ x; the RRDB adds its own
    # 0.2·(RDB3∘RDB2∘RDB1)(x) + x ≈ 1.2·x
    torch.manual_seed(0)
    net = RRDBNet(nf=8, nb=2, gc=4).to(device, dtype)
    x = torch.randn(2, 8, 5, 5).to(device, dtype)
    block = net.RRDB_trunk[0]
    with torch.no_grad():
        assert 0 < float((block.RDB1(x) - x).norm() / x.norm()) < 0.05
        assert 0 < float((block(x) - 1.2 * x).norm() / x.norm()) < 0.05
