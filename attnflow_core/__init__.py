"""attnflow_core: exact invertible flows with iMap/iTrans attention (AttnFlow, CVPR 2022) and the
code that reproduces the paper's tables.

Subpackages by role (each ``__init__`` says what belongs there); imports go one way::

    core -> nn, data -> flows, attention, priors -> models -> metrics, training, diagnostics -> repro

The names below are the stable public API: layers, models (``build_model``, ``load_reference``),
data (``load_dataset``, ``TensorBatches``) and training (``fit``, ``TrainConfig``, ``train``).
"""
from .attention import ATTENTIONS, IMap, ITrans
from .attention.masks import MASK_KINDS, make_mask
from .core import (
                   AttnflowError,
                   CheckpointError,
                   DataError,
                   DataNotFoundError,
                   FlowError,
                   FlowLayer,
                   FlowSequence,
                   NonFiniteError,
                   TrainingError,
                   count_parameters,
)
from .data import TensorBatches, load_dataset
from .flows import ActNorm, AffineCoupling, InvConv1x1, MixLogisticCoupling, Squeeze
from .models import (
                   MODELS,
                   Conditioner,
                   DensityFlow,
                   EncoderConditioner,
                   FlowConfig,
                   FlowModel,
                   FlowStep,
                   MultiScaleFlow,
                   PooledConditioner,
                   build_model,
                   load_reference,
                   paper_config,
)
from .priors import ARChannelPrior, LearnedGaussianPrior, Prior, SplitGaussianPrior, StandardNormal
from .training import TrainConfig, TrainResult, fit, train

__version__ = "0.2.0"

__all__ = [
    "ATTENTIONS", "IMap", "ITrans", "MASK_KINDS", "make_mask",
    "AttnflowError", "CheckpointError", "DataError", "DataNotFoundError", "FlowError", "FlowLayer", "FlowSequence",
    "NonFiniteError", "TrainingError", "count_parameters",
    "ActNorm", "AffineCoupling", "InvConv1x1", "MixLogisticCoupling", "Squeeze",
    "MODELS", "Conditioner", "DensityFlow", "EncoderConditioner", "FlowConfig", "FlowModel", "FlowStep",
    "MultiScaleFlow", "PooledConditioner", "build_model", "load_reference", "paper_config",
    "ARChannelPrior", "LearnedGaussianPrior", "Prior", "SplitGaussianPrior", "StandardNormal",
    "TensorBatches", "load_dataset", "TrainConfig", "TrainResult", "fit", "train",
]
