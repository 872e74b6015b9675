"""The layer contract, run over every registered layer of the package (new families get it for free)."""
import pytest
import torch

from attnflow_core.testing import (
    all_layer_examples,
    check_cond_matters,
    check_eval_equals_train,
    check_grads,
    check_logdet,
    check_round_trip,
    check_save_load,
    layers_without_examples,
    prepare,
)

EXAMPLES = all_layer_examples()


def test_every_layer_has_examples():
    assert not layers_without_examples(), "these FlowLayer classes have no examples() for the contract checks"
    assert len(EXAMPLES) >= 25


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_round_trip(name, dtype, device):
    _, ex = EXAMPLES[name]
    layer, x, c = prepare(ex, dtype, device, scale=0.1 if dtype == torch.float64 else 0.03)
    check_round_trip(layer, x, c)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_round_trip_float64(name, device):
    _, ex = EXAMPLES[name]
    check_round_trip(*prepare(ex, torch.float64, device))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_logdet_matches_autograd_jacobian(name, device):
    cls, ex = EXAMPLES[name]
    layer, x, c = prepare(ex, torch.float64, device)
    check_logdet(layer, x, c)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_cond_grads_save_load_eval(name, device):
    _, ex = EXAMPLES[name]
    layer, x, c = prepare(ex, torch.float64, device)
    check_cond_matters(layer, x, c)
    check_grads(layer, x, c, ex.dead_params)
    check_save_load(ex, layer, x, c)
    check_eval_equals_train(layer, x, c)


def test_logdet_check_is_not_trivial():
    # most examples change volume: a log-det check that always saw 0 would prove nothing
    from attnflow_core.testing import jacobian_logdets

    nonzero = 0
    for name, (_, ex) in EXAMPLES.items():
        layer, x, c = prepare(ex, torch.float64, "cpu")
        ld = jacobian_logdets(lambda t: layer(t, None if c is None else c[:1])[0], x[:1])
        nonzero += bool(ld.abs().max() > 1e-3)
    assert nonzero >= len(EXAMPLES) - 2  # squeeze is volume-preserving


def test_contract_catches_a_wrong_logdet():
    # the checks can fail: a layer that reports half its log-det is caught
    from attnflow_core.core import LayerExample
    from attnflow_core.flows import ActNorm

    class Halved(ActNorm):
        contract_exempt = "deliberately broken, for this test"

        def forward(self, x, cond=None):
            y, ld = super().forward(x, cond)
            return y, 0.5 * ld

    layer, x, c = prepare(LayerExample(lambda: Halved(4), (2, 4, 4, 4)), torch.float64, "cpu")
    with pytest.raises(AssertionError):
        check_logdet(layer, x, c)
