r"""The RRDB network (ESRGAN's generator) as SRFlow's low-resolution encoder.

Layout (``scale`` = 8 or 4, ``nf`` features, ``nb`` blocks, growth ``gc``):

* ``conv_first`` 3→nf (3×3), then ``nb`` residual-in-residual dense blocks (``RRDB_trunk``);
* ``last_lr_fea = b + trunk_conv(b)`` with ``b`` the last block's output (SRFlow's form: the skip
  starts after the trunk, not at ``conv_first`` as in ESRGAN);
* upsampling: ``fea_up2 = LReLU(upconv1(nearest×2(last_lr_fea)))``,
  ``fea_up4 = LReLU(upconv2(nearest×2(fea_up2)))`` and, at 8×, ``fea_up8 = LReLU(upconv3(nearest×2(fea_up4)))``;
  RGB ``out = conv_last(LReLU(HRconv(fea_up<scale>)))``. The stored maps are **post-activation**: the
  reference applies an in-place LeakyReLU(0.2) to the very tensors it returns, so its flow sees
  activated maps (an official checkpoint gives the reference's likelihoods only with this form);
* ``fea_up1 = last_lr_fea``, ``fea_up0`` = its bilinear ×½ and ``fea_up-1`` its bilinear ×¼
  (``align_corners=False``, output size rounded down as in the reference).

A dense block (RDB) has five 3×3 convs with inputs ``nf, nf+gc, …, nf+4gc`` (the first four give ``gc``
channels and a LeakyReLU(0.2), the fifth ``nf``) and returns ``0.2·out + x``; an RRDB chains three RDBs
and returns ``0.2·out + x``. RDB convs start Kaiming-normal ×0.1 with zero bias. Module names follow the
reference code's, so a state dict of its RRDB loads as is. With nf 64, nb 8, gc 32 the 8× network has
5,943,555 parameters, ``upconv3``/``HRconv``/``conv_last`` included (SRFlow's flow never uses them, but
they are part of the reference's count); the 4× network has no ``upconv3``.

References: Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCV-W 2018;
Lugmayr et al., "SRFlow: Learning the Super-Resolution Space with Normalizing Flow", ECCV 2020.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError

SCALE = 8  # the default: three ×2 upsampling stages
SCALES = (4, 8)


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convs; output ``0.2·conv5(…) + x``.

    References: Wang et al., "ESRGAN", ECCV-W 2018.
    """

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        for i in range(5):
            conv = nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            with torch.no_grad():
                conv.weight.mul_(0.1)  # small residual branches: the block starts near identity
            nn.init.zeros_(conv.bias)
            self.add_module(f"conv{i + 1}", conv)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(_lrelu(getattr(self, f"conv{i}")(torch.cat(feats, dim=1))))
        return 0.2 * self.conv5(torch.cat(feats, dim=1)) + x


class RRDB(nn.Module):
    """Residual in residual dense block: three RDBs, output ``0.2·RDB3(RDB2(RDB1(x))) + x``.

    References: Wang et al., "ESRGAN", ECCV-W 2018.
    """

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock(nf, gc)
        self.RDB2 = ResidualDenseBlock(nf, gc)
        self.RDB3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: Tensor) -> Tensor:
        return 0.2 * self.RDB3(self.RDB2(self.RDB1(x))) + x


class RRDBNet(nn.Module):
    """SRFlow's 8× (or 4×) RRDB encoder (see the module docstring for the layout and the feature names).

    ``forward(lr)`` returns the RGB super-resolution (the L1-pretraining output);
    :meth:`features` returns the maps the flow is conditioned on.

    References: Wang et al., "ESRGAN", ECCV-W 2018; Lugmayr et al., "SRFlow", ECCV 2020.
    """

    def __init__(self, nf: int = 64, nb: int = 8, gc: int = 32, in_channels: int = 3, out_channels: int = 3,
                 scale: int = SCALE) -> None:
        super().__init__()
        if scale not in SCALES:
            raise FlowError(f"the RRDB encoder upsamples by one of {SCALES}, got scale={scale}")
        self.nf, self.nb, self.gc, self.scale = nf, nb, gc, scale
        self.conv_first = nn.Conv2d(in_channels, nf, 3, padding=1)
        self.RRDB_trunk = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, padding=1)
        if scale == 8:
            self.upconv3 = nn.Conv2d(nf, nf, 3, padding=1)
        self.HRconv = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, out_channels, 3, padding=1)

    def features(self, lr: Tensor, blocks: tuple[int, ...] = (), rgb: bool = False, half: bool = True,
                 quarter: bool = False) -> dict[str, Tensor]:
        """``last_lr_fea``/``fea_up1``, ``fea_up2``, ``fea_up4``, ``fea_up0`` (if ``half``), ``fea_up-1`` (if
        ``quarter``) and ``block_<i>`` for each ``i`` in ``blocks`` (0-based trunk indices); with ``rgb=True``
        also ``fea_up8`` (8×) and ``out``. The 8× branch is skipped otherwise: the flow does not read it."""
        fea = self.conv_first(lr)
        out: dict[str, Tensor] = {}
        for i, block in enumerate(self.RRDB_trunk):
            fea = block(fea)
            if i in blocks:
                out[f"block_{i}"] = fea
        last = fea + self.trunk_conv(fea)
        out["last_lr_fea"] = out["fea_up1"] = last
        for name, factor, wanted in (("fea_up0", 0.5, half), ("fea_up-1", 0.25, quarter)):
            if wanted:
                out[name] = F.interpolate(last, scale_factor=factor, mode="bilinear", align_corners=False,
                                          recompute_scale_factor=True)
        out["fea_up2"] = _lrelu(self.upconv1(F.interpolate(last, scale_factor=2, mode="nearest")))
        out["fea_up4"] = _lrelu(self.upconv2(F.interpolate(out["fea_up2"], scale_factor=2, mode="nearest")))
        if rgb:
            top = out["fea_up4"]
            if self.scale == 8:
                top = out["fea_up8"] = _lrelu(self.upconv3(F.interpolate(top, scale_factor=2, mode="nearest")))
            out["out"] = self.conv_last(_lrelu(self.HRconv(top)))
        return out

    def forward(self, lr: Tensor) -> Tensor:
        return self.features(lr, rgb=True)["out"]
