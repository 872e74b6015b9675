"""Latent priors of the multi-scale flows.

Every prior has ``log_prob(z, context) -> (B,)`` and ``sample(context, shape, temperature)``;
``context`` is the half of the level's output that continues to the coarser levels
(``None`` for the top level), so sampling runs coarse to fine, as encoding runs fine to coarse.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FlowError
from .coupling import ZeroConv2d

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Sum over all non-batch dims of log N(z; mean, exp(log_std)^2)."""
    lp = -0.5 * (_LOG_2PI + 2.0 * log_std + (z - mean) ** 2 * torch.exp(-2.0 * log_std))
    return lp.reshape(z.shape[0], -1).sum(1)


def gaussian_sample(mean: Tensor, log_std: Tensor, temperature: float) -> Tensor:
    return mean + temperature * torch.exp(log_std) * torch.randn_like(mean)


class LearnedGaussianPrior(nn.Module):
    """Top-level Glow prior: a learned per-channel Gaussian, zero-initialised (so N(0, I) at start)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.mean = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_std = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return gaussian_log_prob(z, self.mean.expand_as(z), self.log_std.expand_as(z))

    def sample(self, context: Tensor | None, shape: tuple[int, int, int, int], temperature: float = 1.0) -> Tensor:
        m = self.mean.expand(shape)
        return gaussian_sample(m, self.log_std.expand(shape), temperature)


class SplitGaussianPrior(nn.Module):
    r"""Glow's learned split prior: :math:`z \sim \mathcal N(\mu(h), e^{2\log\sigma(h)})` with
    :math:`(\mu, \log\sigma)` from a zero-initialised 3×3 conv of the kept half ``h``."""

    def __init__(self, context_channels: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = ZeroConv2d(context_channels, 2 * channels)

    def _params(self, context: Tensor) -> tuple[Tensor, Tensor]:
        h = self.conv(context)
        return h[:, 0::2], h[:, 1::2]

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        mean, log_std = self._params(context)
        return gaussian_log_prob(z, mean, log_std)

    def sample(self, context: Tensor | None, shape: tuple[int, int, int, int], temperature: float = 1.0) -> Tensor:
        mean, log_std = self._params(context)
        return gaussian_sample(mean, log_std, temperature)


class ConvLSTM(nn.Module):
    """Stacked convolutional LSTM; each layer has an input and a hidden-state convolution.

    The recurrent convolution runs once per time step, which on small maps is all per-call
    overhead. For maps of at most ``dense_max_pixels`` pixels it is therefore applied as the
    equivalent dense matrix (built once per pass by convolving the basis images, so it is
    exactly the same linear map and its gradient reaches the conv weights).
    """

    dense_max_pixels = 16

    def __init__(self, channels: int, layers: int, kernel: int, dilation: int) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.hidden = channels
        self.ih = nn.ModuleList(nn.Conv2d(channels, 4 * channels, kernel, padding=pad, dilation=dilation)
                                for _ in range(layers))
        self.hh = nn.ModuleList(nn.Conv2d(channels, 4 * channels, kernel, padding=pad, dilation=dilation)
                                for _ in range(layers))

    @staticmethod
    def _cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def _recurrent(self, conv: nn.Conv2d, h: int, w: int, like: Tensor):
        """``h_prev -> conv(h_prev)`` as a callable, dense for small maps."""
        if h * w > self.dense_max_pixels:
            return conv
        n_in = self.hidden * h * w
        basis = torch.eye(n_in, dtype=like.dtype, device=like.device).view(n_in, self.hidden, h, w)
        mat = F.conv2d(basis, conv.weight, None, conv.stride, conv.padding, conv.dilation).flatten(1)
        bias = conv.bias.repeat_interleave(h * w)
        return lambda t: torch.addmm(bias, t.flatten(1), mat).view(t.shape[0], 4 * self.hidden, h, w)

    def run_sequence(self, x: Tensor) -> Tensor:
        """Teacher-forced pass over a whole sequence ``x: (T, B, C, H, W)``, layer by layer, so
        each layer's input convolution runs once for all time steps."""
        t_len, b = x.shape[:2]
        hh_, ww_ = x.shape[3:]
        for ih, hh in zip(self.ih, self.hh):
            gx = ih(x.flatten(0, 1)).view(t_len, b, 4 * self.hidden, hh_, ww_)
            rec = self._recurrent(hh, hh_, ww_, x)
            h = x.new_zeros(b, self.hidden, hh_, ww_)
            c = torch.zeros_like(h)
            outs = []
            for t in range(t_len):
                h, c = self._cell(gx[t] + rec(h), c)
                outs.append(h)
            x = torch.stack(outs)
        return x

    def step(self, x: Tensor, state: list[tuple[Tensor, Tensor]] | None) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """One time step through all layers (for sampling)."""
        if state is None:
            z = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
            state = [(z, z) for _ in self.ih]
        new_state = []
        for (h, c), ih, hh in zip(state, self.ih, self.hh):
            h, c = self._cell(ih(x) + hh(h), c)
            new_state.append((h, c))
            x = h
        return x, new_state


class ARChannelPrior(nn.Module):
    r"""mARFlow's autoregressive prior over the channels of one level's latent.

    :math:`p(z \mid h) = \prod_j \mathcal N\big(z_j;\ \mu_j(z_{<j}, h),\ \sigma_j(z_{<j}, h)^2\big)`:
    a convolutional LSTM reads the channels ``z_0, z_1, ...`` one ``H×W`` map per step
    (with a zero map first) together with a 4-channel embedding of the kept half ``h``
    (absent at the top level) and emits the mean and log-std of the next channel.
    Log-density is one teacher-forced pass; sampling is sequential over channels.
    """

    def __init__(self, channels: int, context_channels: int = 0, hidden: int = 32, layers: int = 3,
                 kernel: int = 5, dilation: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.context_channels = context_channels
        self.cond_net = None
        in_ch = 1
        if context_channels:
            self.cond_net = nn.Sequential(nn.Conv2d(context_channels, 32, 5, padding=2), nn.ReLU(),
                                          nn.Conv2d(32, 4, 5, padding=2))
            in_ch += 4
        self.embed = nn.Conv2d(in_ch, hidden, kernel, padding=kernel // 2)
        self.lstm = ConvLSTM(hidden, layers, kernel, dilation)
        self.out = nn.Conv2d(hidden, 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as a standard normal
        nn.init.zeros_(self.out.bias)

    def _cond(self, context: Tensor | None, ref: Tensor) -> Tensor | None:
        if self.cond_net is None:
            return None
        if context is None:
            raise FlowError("this autoregressive prior needs the kept half as context")
        return self.cond_net(context)

    def params(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Teacher-forced mean and log-std of every channel of ``z`` (channel j sees ``z_{<j}`` only)."""
        b, c, h, w = z.shape
        seq = torch.cat([z.new_zeros(b, 1, h, w), z[:, :-1]], dim=1).transpose(0, 1).unsqueeze(2)  # (T,B,1,H,W)
        cond = self._cond(context, z)
        if cond is not None:
            seq = torch.cat([seq, cond.unsqueeze(0).expand(c, -1, -1, -1, -1)], dim=2)
        e = self.embed(seq.flatten(0, 1)).view(c, b, -1, h, w)
        out = self.out(self.lstm.run_sequence(e).flatten(0, 1)).view(c, b, 2, h, w)
        return out[:, :, 0].transpose(0, 1), out[:, :, 1].transpose(0, 1)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        mean, log_std = self.params(z, context)
        return gaussian_log_prob(z, mean, log_std)

    def sample(self, context: Tensor | None, shape: tuple[int, int, int, int], temperature: float = 1.0) -> Tensor:
        b, c, h, w = shape
        ref = context if context is not None else self.out.weight
        cond = self._cond(context, ref)
        prev = ref.new_zeros(b, 1, h, w)
        state = None
        zs = []
        for _ in range(c):
            inp = prev if cond is None else torch.cat([prev, cond], dim=1)
            hid, state = self.lstm.step(self.embed(inp), state)
            out = self.out(hid)
            prev = gaussian_sample(out[:, :1], out[:, 1:], temperature)
            zs.append(prev)
        return torch.cat(zs, dim=1)
