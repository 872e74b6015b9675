"""Metrics: likelihood (bits/dim), later sample quality (FID / KID / IS) and restoration
(PSNR / SSIM / LR-PSNR / LPIPS).

Belongs here: functions that score a trained model or its samples against data, each tested against
an independent implementation where one exists. Not here: training, tables (``repro``).
Imports ``core``, ``data`` and ``models``.
"""
from .likelihood import evaluate_bpd, reconstruction_error

__all__ = ["evaluate_bpd", "reconstruction_error"]
