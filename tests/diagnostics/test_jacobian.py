"""The walkthrough's orderings expose the block structure the closed forms rest on (float64, perturbed layers)."""
import torch

from attnflow_core import IMap, ITrans
from attnflow_core.diagnostics import imap_closed_form, itrans_closed_form, itrans_order, jacobian, mask_order


def _perturbed(layer):
    layer = layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return layer


def test_imap_jacobian_is_block_triangular_with_diagonal_blocks():
    torch.manual_seed(0)
    layer = _perturbed(IMap(4))
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64)
    cf = imap_closed_form(layer, x)
    order, n1 = mask_order(cf["mask"].flatten())
    jo = jacobian(layer, x)[order][:, order]
    scale = layer._fixed_scale().detach()[0].expand_as(cf["mask"]).flatten()
    a = cf["a"][0].expand_as(cf["mask"]).flatten()
    assert jo[:n1, n1:].abs().max() == 0
    assert torch.allclose(jo[:n1, :n1], torch.diag(scale[order[:n1]]), rtol=0, atol=1e-14)
    assert torch.allclose(jo[n1:, n1:], torch.diag(a[order[n1:]]), rtol=0, atol=1e-14)
    assert torch.allclose(torch.linalg.slogdet(jo).logabsdet, cf["logdet"][0], rtol=1e-10)


def test_itrans_order_puts_n_u_copies_of_w_on_the_diagonal():
    torch.manual_seed(1)
    for layer, shape in ((ITrans(4, heads=3, patches=4), (1, 4, 4, 4)), (ITrans(3, heads=2, patches=9), (1, 3, 6, 6))):
        layer = _perturbed(layer)
        x = torch.randn(shape, dtype=torch.float64)
        cf = itrans_closed_form(layer, x)
        order, n1 = itrans_order(layer, x.shape)
        assert sorted(order.tolist()) == list(range(x.numel()))
        n_u = int(cf["n_u"])
        assert n1 == x.numel() - n_u * cf["W"].shape[-1]
        jo = jacobian(layer, x)[order][:, order]
        assert jo[:n1, n1:].abs().max() == 0
        assert torch.allclose(jo[:n1, :n1], torch.eye(n1, dtype=x.dtype), rtol=0, atol=1e-14)
        kron = torch.kron(torch.eye(n_u, dtype=x.dtype), cf["W"][0])
        assert torch.allclose(jo[n1:, n1:], kron, rtol=0, atol=1e-12)
        assert torch.allclose(torch.linalg.slogdet(jo).logabsdet, cf["logdet"][0], rtol=1e-10)
