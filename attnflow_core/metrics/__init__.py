"""Metrics: likelihood (bits/dim), restoration (PSNR / SSIM / LR-PSNR / LPIPS and Table 4's temperature
sweep); later sample quality (FID / KID / IS).

Belongs here: functions that score a trained model or its samples against data, each tested against
an independent implementation where one exists. Not here: training, tables (``repro``).
Imports ``core``, ``data`` and ``models``.
"""
from .likelihood import evaluate_bpd, reconstruction_error
from .restoration import LPIPS, lr_psnr, psnr, ssim
from .super_resolution import PAPER_TEMPERATURES, evaluate_bicubic, evaluate_sr

__all__ = ["evaluate_bpd", "reconstruction_error", "LPIPS", "lr_psnr", "psnr", "ssim", "PAPER_TEMPERATURES",
           "evaluate_bicubic", "evaluate_sr"]
