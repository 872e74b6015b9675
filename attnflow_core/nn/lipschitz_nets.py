r"""The residual branches ``g`` of i-ResNet / Residual Flow blocks, with a certified Lipschitz bound.

Conv branch (Residual Flows' "3-1-3", i-ResNet's with ELU):
``g = SNConv_{k_L}(h→C) ∘ [attention] ∘ φ ∘ … ∘ φ ∘ SNConv_{k_2}(h→h) ∘ φ ∘ SNConv_{k_1}(C→h) ∘ [φ]``,
the leading activation ("pre-activation") left out for the first block of a network, an optional
attention module after the last hidden activation (ACF's placement). FC branch (Residual Flows' last
blocks): the same on the flattened tensor with linear layers.

**Certificate.** ``Lip(g) ≤ Π_l ‖W̄_l‖ · Π φ_l · Lip(attention)``; each factor is certified
(:mod:`attnflow_core.nn.lipschitz`: ``‖W̄_l‖ ≤ c``, activations ≤ 1; an attention module states its own
bound, ≤ 1 for ACF's). :meth:`lipschitz_bound` computes the product from the current weights with certified
norms, not from power-iteration estimates. Nothing stochastic sits inside ``g`` (no dropout).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..core.errors import FlowError
from .lipschitz import SpectralConv2d, SpectralLinear, make_activation


def parse_kernels(kernels: str | Sequence[int]) -> tuple[int, ...]:
    """``"3-1-3"`` → ``(3, 1, 3)``."""
    ks = tuple(int(k) for k in (kernels.split("-") if isinstance(kernels, str) else kernels))
    if len(ks) < 2 or any(k < 1 or k % 2 == 0 for k in ks):
        raise FlowError(f"kernels must be at least two odd sizes like '3-1-3', got {kernels!r}")
    return ks


def _bound(modules: Sequence[nn.Module]) -> float:
    out = 1.0
    for m in modules:
        if hasattr(m, "lipschitz_bound"):
            out *= float(m.lipschitz_bound())
        elif hasattr(m, "lipschitz"):
            out *= float(m.lipschitz)
        else:
            raise FlowError(f"{type(m).__name__} inside a Lipschitz branch states no Lipschitz bound")
    return out


class LipschitzConvNet(nn.Module):
    """Convolutional residual branch (module docstring); ``attention`` is any module mapping the
    ``(B, hidden, H, W)`` hidden map to the same shape with a ``lipschitz_bound()``.

    References: Behrmann et al., "Invertible Residual Networks", ICML 2019; Chen et al., "Residual Flows for
    Invertible Generative Modeling", NeurIPS 2019; Mukherjee et al., "Attentive Contractive Flow", BMVC 2023
    (attention placement).
    """

    def __init__(self, channels: int, hidden: int, input_size: tuple[int, int], kernels: str | Sequence[int] = "3-1-3",
                 coeff: float = 0.98, activation: str = "lipswish", preact: bool = True,
                 attention: nn.Module | None = None) -> None:
        super().__init__()
        ks = parse_kernels(kernels)
        widths = [channels] + [hidden] * (len(ks) - 1) + [channels]
        layers: list[nn.Module] = [make_activation(activation)] if preact else []
        for i, k in enumerate(ks):
            layers.append(SpectralConv2d(widths[i], widths[i + 1], k, input_size, coeff))
            if i < len(ks) - 1:
                layers.append(make_activation(activation))
        if attention is not None:
            layers.insert(len(layers) - 1, attention)
        self.net = nn.Sequential(*layers)
        self.channels, self.input_size = channels, tuple(input_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @torch.no_grad()
    def lipschitz_bound(self) -> float:
        return _bound(list(self.net))


class LipschitzFCNet(nn.Module):
    """Fully connected residual branch on the flattened ``(C, H, W)`` tensor: ``D → hidden → … → D``.

    References: Chen et al., "Residual Flows for Invertible Generative Modeling", NeurIPS 2019 (``fc_end``).
    """

    def __init__(self, shape: Sequence[int], hidden: int = 128, n_layers: int = 3, coeff: float = 0.98,
                 activation: str = "lipswish", preact: bool = True) -> None:
        super().__init__()
        if n_layers < 2:
            raise FlowError(f"an FC branch needs at least 2 linear layers, got {n_layers}")
        self.shape = tuple(int(s) for s in shape)
        d = math.prod(self.shape)
        widths = [d] + [hidden] * (n_layers - 1) + [d]
        layers: list[nn.Module] = [make_activation(activation)] if preact else []
        for i in range(n_layers):
            layers.append(SpectralLinear(widths[i], widths[i + 1], coeff))
            if i < n_layers - 1:
                layers.append(make_activation(activation))
        self.net = nn.Sequential(*layers)
        self.channels = self.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).view_as(x)

    @torch.no_grad()
    def lipschitz_bound(self) -> float:
        return _bound(list(self.net))
