"""Convolutional LSTM, the recurrent core of mARFlow's autoregressive prior."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvLSTM(nn.Module):
    """Stacked convolutional LSTM; each layer has an input and a hidden-state convolution.

    References: Shi et al., "Convolutional LSTM Network", NeurIPS 2015.

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
