"""SRFlow's RRDB encoder: the reference's parameter count and module names, the feature maps and their sizes."""
import torch

from attnflow_core.nn import RRDBNet


def test_rrdb_has_the_reference_parameter_count_and_names():
    with torch.device("meta"):
        net = RRDBNet(nf=64, nb=8, gc=32)
    assert sum(p.numel() for p in net.parameters()) == 5_943_555  # CONDITIONAL.md §1.2
    keys = set(net.state_dict())
    # the reference's names, so a state dict of its (pretrained) RRDB loads unchanged
    for k in ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "RRDB_trunk.7.RDB3.conv5.bias",
              "trunk_conv.weight", "upconv1.bias", "upconv2.weight", "upconv3.weight", "HRconv.weight", "conv_last.bias"):
        assert k in keys, k


def test_feature_maps_have_the_scales_of_8x_sr():
    torch.manual_seed(0)
    net = RRDBNet(nf=4, nb=3, gc=2)
    lr = torch.rand(2, 3, 4, 6)
    f = net.features(lr, blocks=(0, 2), rgb=True)
    sizes = {k: tuple(v.shape[1:]) for k, v in f.items()}
    assert sizes == {"block_0": (4, 4, 6), "block_2": (4, 4, 6), "last_lr_fea": (4, 4, 6), "fea_up1": (4, 4, 6),
                     "fea_up0": (4, 2, 3), "fea_up2": (4, 8, 12), "fea_up4": (4, 16, 24), "fea_up8": (4, 32, 48),
                     "out": (3, 32, 48)}
    assert net(lr).shape == (2, 3, 32, 48)
    # SRFlow's trunk output: last block + trunk_conv(last block), not ESRGAN's skip from conv_first
    torch.testing.assert_close(f["last_lr_fea"], f["block_2"] + net.trunk_conv(f["block_2"]))
    torch.testing.assert_close(f["fea_up0"], torch.nn.functional.avg_pool2d(f["last_lr_fea"], 2))  # bilinear ½


def test_dense_blocks_start_near_their_skip_paths():
    # each RDB returns 0.2·conv5(…) + x with conv weights ×0.1, so RDB(x) ≈ x; the RRDB adds its own
    # 0.2·(RDB3∘RDB2∘RDB1)(x) + x ≈ 1.2·x
    torch.manual_seed(0)
    net = RRDBNet(nf=8, nb=2, gc=4)
    x = torch.randn(2, 8, 5, 5)
    block = net.RRDB_trunk[0]
    with torch.no_grad():
        assert 0 < float((block.RDB1(x) - x).norm() / x.norm()) < 0.05
        assert 0 < float((block(x) - 1.2 * x).norm() / x.norm()) < 0.05
