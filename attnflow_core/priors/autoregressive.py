"""mARFlow's multiscale autoregressive prior over the channels of a level's latent."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn.convlstm import ConvLSTM
from .base import Prior, gaussian_log_prob, gaussian_sample


class ARChannelPrior(Prior):
    r"""mARFlow's autoregressive prior over the channels of one level's latent.

    :math:`p(z \mid h) = \prod_j \mathcal N\big(z_j;\ \mu_j(z_{<j}, h),\ \sigma_j(z_{<j}, h)^2\big)`:
    a convolutional LSTM reads the channels ``z_0, z_1, ...`` one ``H×W`` map per step
    (with a zero map first) together with a 4-channel embedding of the kept half ``h``
    (absent at the top level) and emits the mean and log-std of the next channel.
    Log-density is one teacher-forced pass; sampling is sequential over channels.

    References: Mahajan et al., "Normalizing flows with multiscale autoregressive priors", CVPR 2020.
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

    def _embed_context(self, context: Tensor | None) -> Tensor | None:
        if self.cond_net is None:
            return None
        return self.cond_net(self._need(context, "kept half as context"))

    def params(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Teacher-forced mean and log-std of every channel of ``z`` (channel j sees ``z_{<j}`` only)."""
        b, c, h, w = z.shape
        seq = torch.cat([z.new_zeros(b, 1, h, w), z[:, :-1]], dim=1).transpose(0, 1).unsqueeze(2)  # (T,B,1,H,W)
        emb = self._embed_context(context)
        if emb is not None:
            seq = torch.cat([seq, emb.unsqueeze(0).expand(c, -1, -1, -1, -1)], dim=2)
        e = self.embed(seq.flatten(0, 1)).view(c, b, -1, h, w)
        out = self.out(self.lstm.run_sequence(e).flatten(0, 1)).view(c, b, 2, h, w)
        return out[:, :, 0].transpose(0, 1), out[:, :, 1].transpose(0, 1)

    def log_prob(self, z: Tensor, context: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        mean, log_std = self.params(z, context)
        return gaussian_log_prob(z, mean, log_std)

    def sample(self, shape: tuple[int, int, int, int], context: Tensor | None = None, cond: Tensor | None = None,
               temperature: float = 1.0) -> Tensor:
        b, c, h, w = shape
        ref = context if context is not None else self.out.weight
        emb = self._embed_context(context)
        prev = ref.new_zeros(b, 1, h, w)
        state = None
        zs = []
        for _ in range(c):
            inp = prev if emb is None else torch.cat([prev, emb], dim=1)
            hid, state = self.lstm.step(self.embed(inp), state)
            out = self.out(hid)
            prev = gaussian_sample(out[:, :1], out[:, 1:], temperature)
            zs.append(prev)
        return torch.cat(zs, dim=1)
