"""The package's own error types: catch ``AttnflowError`` to catch anything attnflow raises on purpose.

Each subclass also derives from the built-in exception a caller would expect (``ValueError`` for bad
input, ``FileNotFoundError`` for missing data, ...), so ``except ValueError`` keeps working.
"""
from __future__ import annotations


class AttnflowError(Exception):
    """Base of every error raised deliberately by attnflow_core."""


class FlowError(AttnflowError, ValueError):
    """Bad input to a flow or a model config: wrong shape, channel count, non-finite values, ..."""


class DataError(AttnflowError, ValueError):
    """A data set cannot be used as asked (unknown name, bad split, malformed files)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data set is not where it was looked for; the message says where and how to get it."""


class TrainingError(AttnflowError, RuntimeError):
    """Training cannot start or go on (bad training config, images that do not fit the model)."""


class TrainingConfigError(TrainingError, ValueError):
    """An invalid training configuration."""


class NonFiniteError(TrainingError, FloatingPointError):
    """A loss, log-density or log-determinant became NaN or infinite."""


class CheckpointError(TrainingError):
    """A checkpoint cannot be used: unreadable, truncated, or written for another configuration."""


class ConvergenceError(FlowError, ArithmeticError):
    """An iterative inverse did not converge within its iteration limit."""


class MetricError(AttnflowError, ValueError):
    """A metric cannot be computed as asked (too few samples for a KID subset, mismatched feature sizes)."""


class FeatureNetworkError(AttnflowError, RuntimeError):
    """A feature network (the Inception used by FID / KID / IS) is missing, fails its checksum or cannot
    be fetched; the message says which file was looked for and how to install it."""


class ParameterError(AttnflowError, ValueError):
    """A notebook or driver parameter that the notebook does not declare (a typo), or a value that cannot be
    read as the declared parameter's type; the message lists the declared names."""
