r"""Element-wise layers of the Residual Flow / i-ResNet models: the logit transform and their ActNorm."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.checks import check_model_space
from ..core.errors import FlowError
from ..core.layer import FlowLayer, LayerExample
from ..nn.norm import InitFlagMixin


class LogitTransform(FlowLayer):
    r"""Logit of the squeezed unit interval (Real NVP; Residual Flows' data transform).

    Model-space input ``x ∈ [-1/2, 1/2]``; with :math:`s = \alpha + (1-2\alpha)(x + 1/2)`:
    forward :math:`z = \log s - \log(1 - s)`; inverse :math:`x = (\mathrm{sigmoid}(z) - \alpha)/(1-2\alpha) - 1/2`;
    log-det :math:`\sum_i \log(1-2\alpha) - \log s_i - \log(1-s_i)`. Residual Flows: ``α = 0.05`` (CIFAR-10),
    ``1e-6`` (MNIST).

    The inverse is clamped to ``[-1/2, 1/2]``: the forward's image is :math:`\mathrm{sigmoid}(z) \in [\alpha, 1-\alpha]`,
    where the clamp changes nothing (the map stays an exact bijection of model space onto it); a latent
    outside it (an untrained model's sample) has no preimage in the data's support, and is mapped to the
    nearest model-space value so that ``log_prob(sample(n))`` is defined.

    References: Dinh et al., "Density estimation using Real NVP", ICLR 2017; Chen et al., "Residual Flows for
    Invertible Generative Modeling", NeurIPS 2019.
    """

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise FlowError(f"LogitTransform needs 0 <= alpha < 0.5, got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        # outside [-1/2, 1/2] the logit is NaN (or a wrong finite value for small overshoots): refuse it
        check_model_space(x, "LogitTransform input", "for 8-bit images use the model's bits_per_dim")
        s = self.alpha + (1 - 2 * self.alpha) * (x + 0.5)
        z = torch.log(s) - torch.log1p(-s)
        ld = math.log1p(-2 * self.alpha) - torch.log(s) - torch.log1p(-s)
        return z, ld.flatten(1).sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        return torch.clamp((torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha) - 0.5, -0.5, 0.5)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"logit": LayerExample(lambda: cls(0.05), (2, 3, 4, 4), input_scale=0.1)}


class FlooredActNorm(InitFlagMixin, FlowLayer):
    r"""ActNorm as in the Residual Flows code: :math:`y = (x + b)\,e^{s}`, per channel (``flat=False``,
    ActNorm2d) or per element of the flattened sample (``flat=True``, ActNorm1d after the FC blocks).

    Initialised on the first training batch: ``b = −mean``, ``s = −½ log max(var, 0.2)`` (the variance floor
    keeps near-constant dimensions, e.g. MNIST's borders, from being blown up). Inverse
    :math:`x = y e^{-s} - b`; log-det :math:`\sum s` over all dimensions (``H·W·Σ_c s_c`` per channel).

    References: Kingma & Dhariwal, "Glow", NeurIPS 2018; Chen et al., "Residual Flows for Invertible Generative
    Modeling", NeurIPS 2019 (this initialisation).
    """

    def __init__(self, channels: int, spatial: tuple[int, int] | None = None, var_floor: float = 0.2) -> None:
        super().__init__(channels)
        shape = (1, channels, 1, 1) if spatial is None else (1, channels, *spatial)
        self.flat = spatial is not None
        self.var_floor = float(var_floor)
        self.bias = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self._register_init_flag()

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        dims = (0,) if self.flat else (0, 2, 3)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False) if x.shape[0] > 1 else torch.ones_like(mean)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-0.5 * torch.log(torch.clamp(var, min=self.var_floor)))
        self._mark_initialized()

    def _check_spatial(self, x: Tensor) -> None:
        if self.flat and tuple(x.shape[2:]) != tuple(self.bias.shape[2:]):
            raise FlowError(f"FlooredActNorm (per element) was built for {tuple(self.bias.shape[1:])}, got {tuple(x.shape[1:])}")

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        self._check_spatial(x)
        if self.training and not self.is_initialized():
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        per = 1 if self.flat else x.shape[2] * x.shape[3]
        return y, (per * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        self._check_spatial(y)
        return y * torch.exp(-self.log_scale) - self.bias

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        return {"per_channel": LayerExample(lambda: cls(3), (4, 3, 2, 2)),
                "per_element": LayerExample(lambda: cls(2, (2, 2)), (4, 2, 2, 2))}
