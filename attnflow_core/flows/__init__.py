"""Invertible layers by kind (every one a :class:`~attnflow_core.core.FlowLayer`).

Belongs here: Glow's layers (ActNorm, LU 1×1 conv, squeeze), couplings (taking a network factory);
conditional layers (SRFlow's affine injector, Full-Glow's conditional ActNorm / 1×1 conv),
residual blocks ``x + g(x)`` with fixed-point inverses (also those whose branch is an attention map: ACF's
conv block, Zha's iDP / iCon block, in ``residual_attention``), and log-det estimators.
Not here: attention layers (``attention``), priors, whole models. Imports ``core`` and ``nn`` only.
"""
from .coupling import AffineCoupling, MixLogisticCoupling, mixture_log_cdf_terms
from .elementwise import FlooredActNorm, LogitTransform
from .glow import ActNorm, InvConv1x1, Squeeze
from .logdet import LogDetConfig, estimate_logdet, exact_logdet
from .residual import ResidualBlock
from .residual_attention import AttentiveResidualBlock, ZhaAttentionBlock
from .srflow import AffineInjector, CondAffineCoupling, InvConv1x1Full

__all__ = ["AffineCoupling", "MixLogisticCoupling", "mixture_log_cdf_terms", "ActNorm", "InvConv1x1", "Squeeze",
           "AffineInjector", "CondAffineCoupling", "InvConv1x1Full",
           "FlooredActNorm", "LogitTransform", "LogDetConfig", "estimate_logdet", "exact_logdet", "ResidualBlock",
           "AttentiveResidualBlock", "ZhaAttentionBlock"]
