"""iMap: invertible map-based attention (paper Eq. 4a, 4c, 6, 7)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.layer import FlowLayer, LayerExample
from .masks import MASK_KINDS, make_mask

_EPS = 1e-4  # floor on every scale, so the inverse never divides by an underflowed zero


class IMap(FlowLayer):
    r"""Invertible map-based attention.

    With the binary mask ``M`` (1 = masked half :math:`x_1 = M\odot x`):

    .. math::
        g_p &= \operatorname{AvgPool}_{c'}\big(\mathrm{Conv1d}_{1\times1}(M\odot x)\big)_{c',p}
              = \textstyle\sum_c \bar w_c\, M_{c,p} x_{c,p} + \bar b,
              \qquad \bar w = \tfrac1{C}\textstyle\sum_{c'} W_{c',:}\\
        a_p &= \epsilon + (1-\epsilon)\,\sigma(g_p + o)  \quad\text{(one weight per spatial position)}\\
        y &= x \odot \big((1-M)\,a + M\,\varsigma\big),\qquad
             \varsigma_c = \epsilon + (1-\epsilon)\,\sigma(s_c)

    i.e. Eq. 4a (``y1 = x1 ⊙ s``) and Eq. 4c (``y2 = x2 ⊙ f(x1)``), with a learnable
    offset ``o`` and per-channel scale ``s``. The inverse (Eq. 5) first recovers
    :math:`x_1 = y_1 / \varsigma`, recomputes ``a`` from it and divides ``y2`` by ``a``.

    Log-det (Eq. 7, counted exactly): :math:`\sum_p n_p \log a_p + \sum_{c,p} M_{c,p}\log\varsigma_c`
    where :math:`n_p = \sum_c (1 - M_{c,p})` is the number of elements ``a_p`` scales
    (``C/2`` for the checkerboard with even ``C``; ``⌊C/2⌋`` or ``⌈C/2⌉`` otherwise).

    The 1-D convolution keeps its full ``C×C`` weight (as in the paper), but since
    average pooling follows a linear map, it is evaluated as one weighted channel sum.
    With ``cond_channels > 0`` a 1×1 convolution of ``cond`` is added to ``g``.

    With the *spatial* mask every channel of a position is either masked or not, so at the positions
    that ``a_p`` rescales the masked input is zero: ``g_p`` is the bias alone, the conv weights get no
    gradient and iMap reduces to one learned scale per layer. We keep the paper's definition (the mask
    ablation's "spatial" row measures exactly this); the contract example declares the dead weight.

    References: Sukthanker et al., "Generative Flows with Invertible Attentions", CVPR 2022 (Eq. 4–7).
    """

    def __init__(self, channels: int, mask: str = "checkerboard", cond_channels: int = 0,
                 mask_seed: int = 0) -> None:
        super().__init__(channels, cond_channels)
        self.mask_kind = mask
        self.mask_seed = mask_seed
        make_mask(mask, max(channels, 2), 2, 2)  # validate the name early
        self.conv = nn.Conv1d(channels, channels, kernel_size=1)
        self.offset = nn.Parameter(torch.full((1,), 2.0))
        self.s = nn.Parameter(torch.full((channels,), 2.0))
        self.cond_conv = nn.Conv2d(cond_channels, 1, 1) if cond_channels else None
        if self.cond_conv is not None:
            nn.init.zeros_(self.cond_conv.weight)
            nn.init.zeros_(self.cond_conv.bias)
        self._mask_cache: dict[tuple, Tensor] = {}

    def mask(self, h: int, w: int, like: Tensor) -> Tensor:
        key = (h, w, like.dtype, like.device)
        if key not in self._mask_cache:
            self._mask_cache[key] = make_mask(self.mask_kind, self.channels, h, w, self.mask_seed).to(like)
        return self._mask_cache[key]

    def _attention(self, x1: Tensor, cond: Tensor | None) -> Tensor:
        """a: (B, 1, H, W), computed from the masked half only."""
        w_bar = self.conv.weight[:, :, 0].mean(dim=0)  # (C,)
        g = torch.einsum("c,bchw->bhw", w_bar, x1).unsqueeze(1) + self.conv.bias.mean()
        if self.cond_conv is not None:
            g = g + self.cond_conv(cond)
        return _EPS + (1 - _EPS) * torch.sigmoid(g + self.offset)

    def _fixed_scale(self) -> Tensor:
        return (_EPS + (1 - _EPS) * torch.sigmoid(self.s)).view(1, -1, 1, 1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        m = self.mask(x.shape[2], x.shape[3], x)
        a = self._attention(x * m, cond)
        sc = self._fixed_scale()
        y = x * ((1 - m) * a + m * sc)
        n_p = (1 - m).sum(dim=0, keepdim=True)  # (1, H, W): elements scaled by each a_p
        logdet = (n_p * torch.log(a[:, 0])).flatten(1).sum(1) + (m * torch.log(sc[0])).sum()
        return y, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        m = self.mask(y.shape[2], y.shape[3], y)
        x1 = y * m / self._fixed_scale()
        a = self._attention(x1, cond)
        return x1 + y * (1 - m) / a

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        ex = {f"imap_{m}": LayerExample(lambda m=m: cls(4, mask=m), (2, 4, 4, 4),
                                        dead_params=("conv.weight",) if m == "spatial" else ())
              for m in MASK_KINDS}
        ex["imap_odd_channels"] = LayerExample(lambda: cls(3), (2, 3, 4, 4))
        ex["imap_cond"] = LayerExample(lambda: cls(4, cond_channels=2), (2, 4, 4, 4), (2, 2, 4, 4))
        return ex
