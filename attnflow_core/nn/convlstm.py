r"""Convolutional LSTM, the recurrent core of mARFlow's autoregressive prior."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvLSTM(nn.Module):
    r"""Stacked convolutional LSTM; each layer has an input and a hidden-state convolution.

    Per layer and step: :math:`(i, f, g, o) = W_x * x_t + W_h * h_{t-1}` (biases included),
    :math:`c_t = \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh g`, :math:`h_t = \sigma(o) \odot \tanh c_t`,
    from :math:`h_0 = c_0 = 0`.

    References: Shi et al., "Convolutional LSTM Network", NeurIPS 2015.

    The recurrent convolution runs once per time step, which on small maps is all per-call
    overhead. For maps of at most ``dense_max_pixels`` pixels it is therefore applied as the
    equivalent dense matrix (built once per pass by convolving the basis images, so it is
    exactly the same linear map and its gradient reaches the conv weights).

    The first step starts from the zero state, so :math:`\sigma(f) \odot c_0 = 0` is dropped and,
    wherever that gives the same bits, :math:`W_h * 0` is its bias alone (below). Values,
    gradients and therefore training runs equal those of the plain recurrence bit for bit.
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
    def _cell(gates: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """One step; ``c = None`` is the zero state (``σ(f)·0 + y = y`` exactly, so it is skipped)."""
        i, f, g, o = gates.chunk(4, dim=1)
        ig = torch.sigmoid(i) * torch.tanh(g)
        c = ig if c is None else torch.sigmoid(f) * c + ig
        return torch.sigmoid(o) * torch.tanh(c), c

    def _recurrent(self, conv: nn.Conv2d, h: int, w: int, like: Tensor) -> tuple[Callable[[Tensor], Tensor],
                                                                                   Callable[[Tensor], Tensor]]:
        """``h_prev -> conv(h_prev)`` as a callable (dense for small maps), and ``gx -> gx + conv(0)``
        for the first step.

        Dense path: ``conv(0) = addmm(bias, 0, M) = bias``, and the bias gradient of a broadcast add
        is the same batch sum that ``addmm`` gets, so the matrix product is skipped. Conv path: the
        convolution on the zero state still runs, because oneDNN (CPU, float32) reduces the bias
        gradient inside the convolution in an order of its own (skipping it changes its last bits).
        """
        zero = like.new_zeros(like.shape[1], self.hidden, h, w)
        if h * w > self.dense_max_pixels:
            return conv, lambda gx: gx + conv(zero)
        n_in = self.hidden * h * w
        basis = torch.eye(n_in, dtype=like.dtype, device=like.device).view(n_in, self.hidden, h, w)
        mat = F.conv2d(basis, conv.weight, None, conv.stride, conv.padding, conv.dilation).flatten(1)
        bias = conv.bias.repeat_interleave(h * w)
        bias_map = bias.view(4 * self.hidden, h, w)
        rec = lambda t: torch.addmm(bias, t.flatten(1), mat).view(t.shape[0], 4 * self.hidden, h, w)  # noqa: E731
        if like.shape[0] == 1:  # one step: M unused, but the weight's gradient must still be a zero tensor
            return rec, lambda gx: gx + rec(zero)
        return rec, lambda gx: gx + bias_map

    def run_sequence(self, x: Tensor) -> Tensor:
        """Teacher-forced pass over a whole sequence ``x: (T, B, C, H, W)``, layer by layer, so
        each layer's input convolution runs once for all time steps."""
        t_len = x.shape[0]
        hh_, ww_ = x.shape[3:]
        for ih, hh in zip(self.ih, self.hh):
            # unbind: one backward node that stacks the steps' gradients; indexing gx[t] would
            # scatter each step's gradient into a zero tensor of the whole sequence (O(T^2) traffic)
            gx = ih(x.flatten(0, 1)).unflatten(0, (t_len, -1)).unbind(0)
            rec, first = self._recurrent(hh, hh_, ww_, x)
            h, c = self._cell(first(gx[0]), None)
            outs = [h]
            for t in range(1, t_len):
                h, c = self._cell(gx[t] + rec(h), c)
                outs.append(h)
            x = torch.stack(outs)
        return x

    def step(self, x: Tensor, state: list[tuple[Tensor, Tensor]] | None) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """One time step through all layers (for sampling; ``state=None`` is the zero state, whose
        recurrent convolution is its bias: the same values)."""
        new_state = []
        for j, (ih, hh) in enumerate(zip(self.ih, self.hh)):
            if state is None:
                h, c = self._cell(ih(x) + hh.bias.view(-1, 1, 1), None)
            else:
                h, c = self._cell(ih(x) + hh(state[j][0]), state[j][1])
            new_state.append((h, c))
            x = h
        return x, new_state
