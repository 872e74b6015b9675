"""Latent priors: densities of the split-off and top-level latents of multi-scale flows.

Belongs here: the :class:`Prior` base (one argument order: ``log_prob(z, context, cond)``,
``sample(shape, context, cond, temperature)``), Gaussian priors (fixed, learned, split / conditional
split, per-dimension diagonal) and mARFlow's autoregressive ConvLSTM prior. Not here: invertible layers, whole models.
Imports ``core`` and ``nn`` only.
"""
from .autoregressive import ARChannelPrior
from .base import GaussianPrior, Prior, StandardNormal, gaussian_log_prob, gaussian_sample
from .diagonal import DiagonalGaussianPrior
from .gaussian import LearnedGaussianPrior, SplitGaussianPrior

__all__ = ["ARChannelPrior", "DiagonalGaussianPrior", "GaussianPrior", "Prior", "StandardNormal", "gaussian_log_prob", "gaussian_sample",
           "LearnedGaussianPrior", "SplitGaussianPrior"]
