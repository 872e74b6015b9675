"""Core: the layer protocol and what every other subpackage may use.

Belongs here: :class:`FlowLayer` (the contract, ``cond_channels``, shape checks, the flags
``exact_logdet`` / ``exact_inverse``), :class:`FlowSequence`, the package's error types, input checks,
small tensor ops, atomic file writes and the generic name registry.
Not here: anything with learnable weights beyond the base classes, and any import of another
attnflow_core subpackage (the core imports nothing else of the package).
"""
from .checks import check_cond, check_finite, check_image
from .errors import (
                     AttnflowError,
                     CheckpointError,
                     ConvergenceError,
                     DataError,
                     DataNotFoundError,
                     FeatureNetworkError,
                     FlowError,
                     MetricError,
                     NonFiniteError,
                     TrainingConfigError,
                     TrainingError,
)
from .layer import LAYER_CLASSES, FlowLayer, FlowSequence, LayerExample, registered_layers
from .ops import count_parameters, flatten_latents, sum_except_batch
from .registry import Registry, UnknownNameError

__all__ = [
    "check_cond", "check_finite", "check_image",
    "AttnflowError", "CheckpointError", "ConvergenceError", "DataError", "DataNotFoundError",
    "FeatureNetworkError", "FlowError", "MetricError", "NonFiniteError", "TrainingConfigError", "TrainingError",
    "LAYER_CLASSES", "FlowLayer", "FlowSequence", "LayerExample", "registered_layers",
    "count_parameters", "flatten_latents", "sum_except_batch", "Registry", "UnknownNameError",
]
