"""Data-dependent initialisation shared by ActNorm (a flow layer) and the normalised convs of coupling nets."""
from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def data_init_affine(x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    r"""Per-channel ``(log_scale, bias)`` with which :math:`x e^{\ell} + b` has zero mean and unit
    variance over batch and space (Glow's ActNorm initialisation); both shaped ``(1, C, 1, 1)``."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    log_scale = -torch.log(std + eps)
    return log_scale, -mean * torch.exp(log_scale)


class InitFlagMixin:
    """An ``initialized`` buffer (saved with ``state_dict``) read without a host sync after the first
    read. Call :meth:`_register_init_flag` in ``__init__``."""

    initialized: Tensor

    def _register_init_flag(self) -> None:
        self.register_buffer("initialized", torch.tensor(False))  # type: ignore[attr-defined]
        self._init_cache = False  # avoids a host-device sync on every training step

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._init_cache = False
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[misc]

    def is_initialized(self) -> bool:
        if not self._init_cache:
            self._init_cache = bool(self.initialized)
        return self._init_cache

    def _mark_initialized(self) -> None:
        self.initialized.fill_(True)
        self._init_cache = True


class DataInitMixin(InitFlagMixin):
    """``initialize(x)``: set ``self.log_scale`` and ``self.bias`` by :func:`data_init_affine` (with
    ``self.eps``) and mark the module initialised."""

    log_scale: Tensor
    bias: Tensor
    eps: float

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        log_scale, bias = data_init_affine(x, self.eps)
        self.log_scale.copy_(log_scale)
        self.bias.copy_(bias)
        self._mark_initialized()


class DataInitAffine(DataInitMixin, nn.Module):
    """Per-channel ``log_scale`` and ``bias`` set from the first batch by :func:`data_init_affine`."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self._register_init_flag()
