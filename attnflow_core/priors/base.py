r"""The :class:`Prior` base: one argument order for every latent density of the package.

* ``log_prob(z, context=None, cond=None) -> (B,)``
* ``sample(shape, context=None, cond=None, temperature=1.0) -> z`` with ``shape = (B, C, H, W)``

``context`` is the kept half of the level (what continues to the coarser levels; ``None`` at the top
level), so sampling runs coarse to fine while encoding runs fine to coarse. ``cond`` is the external
condition routed to this level by the model (``None`` for unconditional flows). See
:mod:`attnflow_core.core.layer` for both words. A prior that needs one of them and gets ``None`` raises
:class:`~attnflow_core.core.errors.FlowError`.

Temperature scales the standard deviation: :math:`z = \mu + \tau\,\sigma\,\varepsilon`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.errors import FlowError

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Sum over all non-batch dims of log N(z; mean, exp(log_std)^2)."""
    lp = -0.5 * (_LOG_2PI + 2.0 * log_std + (z - mean) ** 2 * torch.exp(-2.0 * log_std))
    return lp.reshape(z.shape[0], -1).sum(1)


def gaussian_sample(mean: Tensor, log_std: Tensor, temperature: float) -> Tensor:
    """``mean + temperature · exp(log_std) · ε`` with ``ε ~ N(0, I)`` from the global RNG."""
    return mean + temperature * torch.exp(log_std) * torch.randn_like(mean)


class Prior(nn.Module):
    """Base class of latent densities (the module docstring states the argument order)."""

    def log_prob(self, z: Tensor, context: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def sample(self, shape: tuple[int, int, int, int], context: Tensor | None = None, cond: Tensor | None = None,
               temperature: float = 1.0) -> Tensor:
        raise NotImplementedError

    def _need(self, value: Tensor | None, what: str) -> Tensor:
        if value is None:
            raise FlowError(f"{type(self).__name__} needs the {what} but got None")
        return value


class GaussianPrior(Prior):
    """A diagonal Gaussian whose mean and log-std come from :meth:`gaussian_params`; ``log_prob`` and
    ``sample`` follow from it. Subclasses implement only ``gaussian_params(shape, context, cond)``."""

    def gaussian_params(self, shape: tuple[int, ...], context: Tensor | None,
                        cond: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def log_prob(self, z: Tensor, context: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        mean, log_std = self.gaussian_params(tuple(z.shape), context, cond)
        return gaussian_log_prob(z, mean, log_std)

    def sample(self, shape: tuple[int, int, int, int], context: Tensor | None = None, cond: Tensor | None = None,
               temperature: float = 1.0) -> Tensor:
        mean, log_std = self.gaussian_params(tuple(shape), context, cond)
        return gaussian_sample(mean, log_std, temperature)


class StandardNormal(Prior):
    """The fixed prior N(0, I) (SRFlow's top level, residual flows)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_like", torch.zeros(()), persistent=False)  # follows .to(device, dtype)

    def log_prob(self, z: Tensor, context: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        return gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))

    def sample(self, shape: tuple[int, int, int, int], context: Tensor | None = None, cond: Tensor | None = None,
               temperature: float = 1.0) -> Tensor:
        return temperature * torch.randn(shape, dtype=self._like.dtype, device=self._like.device)
