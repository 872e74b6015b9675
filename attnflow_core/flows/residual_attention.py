"""The residual blocks of the contractive model family, with the attention branches the models put in them.

* :class:`AttentiveResidualBlock` -- a Residual Flow / i-ResNet conv block whose branch carries ACF's
  attention after its last hidden activation (L2 or LipschitzNorm dot product);
* :class:`ZhaAttentionBlock` -- Zha et al.'s iDP / iCon block ``y = x + F(x)`` (published or corrected).

Both are :class:`~attnflow_core.flows.residual.ResidualBlock` s (fixed-point inverse, estimated log-det);
the attention maps are plain networks (``nn``), built by name from
:data:`~attnflow_core.nn.contractive_attention.CONTRACTIVE_ATTENTIONS`.
Their examples put the attention branches through the shared layer contract.
"""
from __future__ import annotations

from typing import Any

from ..core.errors import FlowError
from ..core.layer import LayerExample
from ..nn.contractive_attention import CONTRACTIVE_ATTENTIONS, kinds_placed
from ..nn.lipschitz_attention import resolve_window
from ..nn.lipschitz_nets import LipschitzConvNet
from .logdet import LogDetConfig
from .residual import ResidualBlock


class AttentiveResidualBlock(ResidualBlock):
    """Conv residual block whose branch ``g`` holds ACF's attention (L2 or dot product) before its output conv;
    global over the ``input_size`` map (``window=None``, ACF's code) or within non-overlapping windows that
    must tile it (:func:`~attnflow_core.nn.lipschitz_attention.resolve_window`). ``options``: those of
    ``CONTRACTIVE_ATTENTIONS[attention]`` (``heads``, ``window`` for ``"acf_l2"``; ``window`` for ``"acf_dot"``);
    any other is refused, naming the valid ones.

    References: Mukherjee, Patro & Namboodiri, "Attentive Contractive Flow with Lipschitz Constrained
    Self-Attention", BMVC 2023; Chen et al., "Residual Flows for Invertible Generative Modeling", NeurIPS 2019.
    """

    contract_draws = 60

    def __init__(self, channels: int, hidden: int, input_size: tuple[int, int], attention: str = "acf_l2",
                 kernels: str = "3-1-3", coeff: float = 0.98, activation: str = "lipswish",
                 preact: bool = True, logdet: LogDetConfig | dict[str, Any] | None = None, max_iter: int = 1000,
                 name: str = "", **options: Any) -> None:
        kind = CONTRACTIVE_ATTENTIONS[attention]
        if kind.placement != "branch":
            raise FlowError(f"{attention!r} is not a branch attention; choose one of "
                            f"{kinds_placed(CONTRACTIVE_ATTENTIONS, 'branch')}")
        # refuse a bad window at construction
        resolve_window(options.get("window"), input_size, name or type(self).__name__)
        g = LipschitzConvNet(channels, hidden, input_size, kernels, coeff, activation, preact,
                             attention=kind(hidden, **options))
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
    """Zha et al.'s attention block ``y = x + F(x)``, ``F`` = iDP or iCon (:class:`~attnflow_core.nn.zha.ZhaAttention`).
    The published form has no Lipschitz certificate and its inverse may not converge (it then raises).

    References: Zha et al., "Invertible Attention", arXiv 2106.09003 (2021).
    """

    contract_draws = 60

    def __init__(self, channels: int, kind: str = "idp", variant: str = "corrected", normalise: str | None = None,
                 coeff: float = 0.9, logdet: LogDetConfig | dict[str, Any] | None = None, max_iter: int = 1000,
                 name: str = "") -> None:
        if CONTRACTIVE_ATTENTIONS[kind].placement != "block":
            raise FlowError(f"{kind!r} is not an attention block; choose one of "
                            f"{kinds_placed(CONTRACTIVE_ATTENTIONS, 'block')}")
        super().__init__(CONTRACTIVE_ATTENTIONS[kind](channels, variant=variant, normalise=normalise, coeff=coeff),
                         channels, logdet, max_iter=max_iter, name=name)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        fast = dict(n_exact_eval=2)
        return {"idp_corrected": LayerExample(lambda: cls(8, "idp", "corrected", logdet=fast), (2, 8, 2, 2)),
                "icon_corrected": LayerExample(lambda: cls(8, "icon", "corrected", logdet=fast), (2, 8, 2, 2))}
