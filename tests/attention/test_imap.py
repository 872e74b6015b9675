"""iMap beyond the generic contract: Eq. 7 counted exactly, weights from the masked half only."""
import torch

from attnflow_core import IMap
from attnflow_core.attention.masks import make_mask
from attnflow_core.testing import jacobian_logdets, perturb_


def test_imap_logdet_counts_odd_channels_exactly(device):
    layer = IMap(3).to(device, torch.float64)
    perturb_(layer)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64).to(device)
    _, logdet = layer(x)
    m = make_mask("checkerboard", 3, 4, 4).double()
    n_p = (1 - m).sum(0)
    assert set(n_p.unique().tolist()) == {1.0, 2.0}  # ⌊3/2⌋ and ⌈3/2⌉ alternate
    torch.testing.assert_close(logdet, jacobian_logdets(lambda t: layer(t)[0], x))



def test_imap_weight_depends_only_on_masked_half(device, dtype):
    layer = IMap(4).to(device, dtype)
    perturb_(layer)
    x = torch.randn(1, 4, 4, 4).to(device, dtype)
    m = make_mask("checkerboard", 4, 4, 4).to(device, dtype)
    y1, _ = layer(x)
    y2, _ = layer(x + 5 * (1 - m) * torch.randn_like(x))
    torch.testing.assert_close(y1 * m, y2 * m)  # masked half untouched by the other half
