"""Flow++ coupling network: weight-normalised layers, a mixture that is a mixture from step 0 and after training."""
import torch
from torch.nn.utils import parametrize

from attnflow_core.models import FlowConfig, FlowModel
from attnflow_core.nn import MixLogisticNet


def _components_differ(net: MixLogisticNet, x: torch.Tensor) -> None:
    _, _, logit_pi, mu, log_s = net(x)
    for name, v in (("logit pi", logit_pi), ("mu", mu), ("log s", log_s)):
        for i in range(1, v.shape[1]):
            assert not torch.equal(v[:, 0], v[:, i]), f"mixture component {i} has the same {name} as component 0"


def test_every_conv_and_linear_is_weight_normalised_and_a_t_start_at_zero(device, dtype):
    net = MixLogisticNet(2, 2, hidden=8, components=3, blocks=1, dropout=0.0).to(device, dtype)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 6 and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert parametrize.is_parametrized(net.rescale, "weight")
    x = torch.randn(2, 2, 4, 4).to(device, dtype)
    a, t, _, _, _ = net(x)
    assert torch.equal(a, torch.zeros_like(a)) and torch.equal(t, torch.zeros_like(t))
    _components_differ(net, x)


def test_mixture_components_of_a_trained_coupling_differ(digits, device):
    """A zero-initialised out conv makes all K components equal forever (equal parameters, equal
    gradients): train a tiny mixture-logistic flow on real digits and check they are not."""
    train, _ = digits
    model = FlowModel(FlowConfig(backbone="marflow", coupling="mixlogistic", image_shape=(1, 8, 8), levels=1,
                                 steps=1, hidden=8, components=3, blocks=1, dropout=0.0, prior_hidden=4,
                                 prior_layers=1)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = train.images[:384].to(device)
    for step in range(24):
        batch = images[16 * step:][:16]
        loss = model.bits_per_dim(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    coupling = model.levels[0].layers[1].layers[2]
    with torch.no_grad():
        h = model.levels[0].layers[1].layers[1](model.levels[0].layers[1].layers[0](
            model.levels[0].layers[0](model.dequantize(images[:16]))[0])[0])[0]
        _components_differ(coupling.net, h[:, : coupling.c1])
