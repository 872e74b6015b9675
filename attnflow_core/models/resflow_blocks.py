"""The residual blocks of the contractive model family, with the attention branches the models put in them.

* :class:`AttentiveResidualBlock` -- a Residual Flow / i-ResNet conv block whose branch carries ACF's
  attention after its last hidden activation (L2 or LipschitzNorm dot product);
* :class:`ZhaAttentionBlock` -- Zha et al.'s iDP / iCon block ``y = x + F(x)`` (published or corrected).

Both are :class:`~attnflow_core.flows.residual.ResidualBlock` s (fixed-point inverse, estimated log-det);
they live here because they join ``flows`` with ``attention`` (sibling subpackages that do not import
each other). Their examples put the attention branches through the shared layer contract.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ..attention.acf import L2SelfAttention, LipschitzDotAttention
from ..attention.lipschitz_attention import resolve_window
from ..attention.zha import ZhaAttention
from ..core.errors import FlowError
from ..core.layer import LayerExample
from ..flows.logdet import LogDetConfig
from ..flows.residual import ResidualBlock
from ..nn.lipschitz_nets import LipschitzConvNet

ACF_KINDS = ("acf_l2", "acf_dot")
ZHA_KINDS = ("idp", "icon")


def acf_attention(kind: str, hidden: int, heads: int = 1, window: int | tuple[int, int] | None = None) -> nn.Module:
    if kind == "acf_l2":
        return L2SelfAttention(hidden, heads=heads, window=window)
    if kind == "acf_dot":
        return LipschitzDotAttention(hidden, window=window)
    raise FlowError(f"unknown ACF attention {kind!r}; choose one of {ACF_KINDS}")


class AttentiveResidualBlock(ResidualBlock):
    """Conv residual block whose branch ``g`` holds ACF's attention (L2 or dot product) before its output conv;
    global over the ``input_size`` map (``window=None``, ACF's code) or within non-overlapping windows that
    must tile it (:func:`~attnflow_core.attention.lipschitz_attention.resolve_window`).

    References: Mukherjee, Patro & Namboodiri, "Attentive Contractive Flow with Lipschitz Constrained
    Self-Attention", BMVC 2023; Chen et al., "Residual Flows for Invertible Generative Modeling", NeurIPS 2019.
    """

    contract_draws = 60

    def __init__(self, channels: int, hidden: int, input_size: tuple[int, int], attention: str = "acf_l2",
                 heads: int = 1, kernels: str = "3-1-3", coeff: float = 0.98, activation: str = "lipswish",
                 preact: bool = True, logdet: LogDetConfig | dict[str, Any] | None = None, max_iter: int = 1000,
                 name: str = "", window: int | tuple[int, int] | None = None) -> None:
        resolve_window(window, input_size, name or type(self).__name__)  # refuse a bad window at construction
        g = LipschitzConvNet(channels, hidden, input_size, kernels, coeff, activation, preact,
                             attention=acf_attention(attention, hidden, heads, window))
        # the estimator is checked on plain blocks (ResidualBlock's examples) and at 10^4 draws in its own
        # tests; here the contract only has to see that the attention branch's estimate matches its Jacobian
        super().__init__(g, channels, logdet, max_iter=max_iter, name=name)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        fast = dict(n_exact_eval=2)
        return {"acf_l2": LayerExample(lambda: cls(2, 4, (3, 3), "acf_l2", heads=2, logdet=fast), (2, 2, 3, 3)),
                "acf_dot": LayerExample(lambda: cls(2, 8, (3, 3), "acf_dot", logdet=fast), (2, 2, 3, 3)),
                "acf_l2_windowed": LayerExample(lambda: cls(2, 4, (2, 4), "acf_l2", heads=2, logdet=fast, window=2),
                                                (2, 2, 2, 4))}


class ZhaAttentionBlock(ResidualBlock):
    """Zha et al.'s attention block ``y = x + F(x)``, ``F`` = iDP or iCon (:class:`~attnflow_core.attention.zha.ZhaAttention`).
    The published form has no Lipschitz certificate and its inverse may not converge (it then raises).

    References: Zha et al., "Invertible Attention", arXiv 2106.09003 (2021).
    """

    contract_draws = 60

    def __init__(self, channels: int, kind: str = "idp", variant: str = "corrected", normalise: str = "global",
                 coeff: float = 0.9, logdet: LogDetConfig | dict[str, Any] | None = None, max_iter: int = 1000,
                 name: str = "") -> None:
        super().__init__(ZhaAttention(channels, kind, variant, normalise, coeff), channels, logdet,
                         max_iter=max_iter, name=name)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        fast = dict(n_exact_eval=2)
        return {"idp_corrected": LayerExample(lambda: cls(8, "idp", "corrected", logdet=fast), (2, 8, 2, 2)),
                "icon_corrected": LayerExample(lambda: cls(8, "icon", "corrected", logdet=fast), (2, 8, 2, 2))}
