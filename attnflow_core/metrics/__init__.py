"""Metrics: likelihood (bits/dim; under additive white Gaussian noise; the spread of a stochastic log-det
estimator), later sample quality (FID / KID / IS) and restoration (PSNR / SSIM / LR-PSNR / LPIPS).

Belongs here: functions that score a trained model or its samples against data, each tested against
an independent implementation where one exists. Not here: training, tables (``repro``).
Imports ``core``, ``data`` and ``models``.
"""
from .likelihood import evaluate_bpd, reconstruction_error
from .robustness import awgn_images, bits_per_dim_under_awgn, estimator_spread

__all__ = ["evaluate_bpd", "reconstruction_error", "awgn_images", "bits_per_dim_under_awgn", "estimator_spread"]
