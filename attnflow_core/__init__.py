"""attnflow_core: exact invertible flows with iMap/iTrans attention (AttnFlow, CVPR 2022)."""
from .attention import IMap, ITrans
from .backbones import FlowConfig, FlowModel, FlowStep, build_model, paper_config
from .base import FlowError, FlowLayer, FlowSequence, NonFiniteError, count_parameters
from .coupling import AffineCoupling, MixLogisticCoupling
from .layers import ActNorm, InvConv1x1, Squeeze
from .masks import MASK_KINDS, make_mask
from .priors import ARChannelPrior, LearnedGaussianPrior, SplitGaussianPrior

__version__ = "0.1.0"

__all__ = [
    "IMap", "ITrans", "FlowConfig", "FlowModel", "FlowStep", "build_model", "paper_config",
    "FlowError", "FlowLayer", "FlowSequence", "NonFiniteError", "count_parameters",
    "AffineCoupling", "MixLogisticCoupling", "ActNorm", "InvConv1x1", "Squeeze",
    "MASK_KINDS", "make_mask", "ARChannelPrior", "LearnedGaussianPrior", "SplitGaussianPrior",
]
