"""The ConvLSTM: the dense recurrent path equals the convolution, the fast recurrence (unbind, zero-state
first step) trains bit for bit like the plain one, and its backward touches each step's gradient once."""
import copy

import pytest
import torch
import torch.nn.functional as F

from attnflow_core.models.multiscale import FlowConfig, FlowModel
from attnflow_core.nn import ConvLSTM
from attnflow_core.testing import perturb_


# -- a private copy of the recurrence as it was before the speed-up (the reference path) -------------------
def _reference_recurrent(lstm, conv, h, w, like):
    if h * w > lstm.dense_max_pixels:
        return conv
    n_in = lstm.hidden * h * w
    basis = torch.eye(n_in, dtype=like.dtype, device=like.device).view(n_in, lstm.hidden, h, w)
    mat = F.conv2d(basis, conv.weight, None, conv.stride, conv.padding, conv.dilation).flatten(1)
    bias = conv.bias.repeat_interleave(h * w)
    return lambda t: torch.addmm(bias, t.flatten(1), mat).view(t.shape[0], 4 * lstm.hidden, h, w)


def _reference_cell(gates, c):
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _reference_run_sequence(lstm, x):
    t_len, b = x.shape[:2]
    hh_, ww_ = x.shape[3:]
    for ih, hh in zip(lstm.ih, lstm.hh):
        gx = ih(x.flatten(0, 1)).view(t_len, b, 4 * lstm.hidden, hh_, ww_)
        rec = _reference_recurrent(lstm, hh, hh_, ww_, x)
        h = x.new_zeros(b, lstm.hidden, hh_, ww_)
        c = torch.zeros_like(h)
        outs = []
        for t in range(t_len):
            h, c = _reference_cell(gx[t] + rec(h), c)
            outs.append(h)
        x = torch.stack(outs)
    return x


def _reference_step(lstm, x, state):
    if state is None:
        z = x.new_zeros(x.shape[0], lstm.hidden, *x.shape[2:])
        state = [(z, z) for _ in lstm.ih]
    new_state = []
    for (h, c), ih, hh in zip(state, lstm.ih, lstm.hh):
        h, c = _reference_cell(ih(x) + hh(h), c)
        new_state.append((h, c))
        x = h
    return x, new_state


@pytest.fixture
def reference_lstm(monkeypatch):
    """Switch every ConvLSTM to the reference recurrence while active: ``with reference_lstm(): ...``."""
    import contextlib

    @contextlib.contextmanager
    def use():
        with monkeypatch.context() as m:
            m.setattr(ConvLSTM, "run_sequence", _reference_run_sequence)
            m.setattr(ConvLSTM, "step", _reference_step)
            yield
    return use


def test_convlstm_dense_path_equals_convolution(monkeypatch, device):
    lstm = ConvLSTM(6, layers=2, kernel=5, dilation=2).to(device, torch.float64)
    perturb_(lstm)
    x = torch.randn(5, 3, 6, 4, 4, dtype=torch.float64).to(device)
    fast = lstm.run_sequence(x)
    monkeypatch.setattr(ConvLSTM, "dense_max_pixels", 0)  # force the convolution path
    torch.testing.assert_close(fast, lstm.run_sequence(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t_len,size", [(1, 3), (5, 3), (1, 6), (5, 6)])  # 3×3: dense path, 6×6: conv path
def test_convlstm_sequence_bitwise_equal_to_reference(reference_lstm, dtype, t_len, size):
    lstm = ConvLSTM(4, layers=2, kernel=3, dilation=1).to(dtype)
    perturb_(lstm, 0.3)
    x = torch.randn(t_len, 3, 4, size, size, dtype=dtype, requires_grad=True)
    out = lstm.run_sequence(x)
    grads = torch.autograd.grad(out.pow(2).sum(), [x, *lstm.parameters()])
    with reference_lstm():
        ref = lstm.run_sequence(x)
        ref_grads = torch.autograd.grad(ref.pow(2).sum(), [x, *lstm.parameters()])
    assert torch.equal(out, ref)
    for g, r in zip(grads, ref_grads):
        assert torch.equal(g, r)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_marflow_training_bitwise_equal_to_reference(reference_lstm, dtype):
    """A few optimiser steps of a small mARFlow (priors on 8×8 maps: conv path; 4×4 and 2×2: dense path):
    losses, every gradient and every parameter equal to the reference recurrence's (torch.equal)."""
    cfg = FlowConfig(backbone="marflow", coupling="affine", image_shape=(3, 16, 16), levels=3, steps=1,
                     hidden=8, prior_hidden=8, prior_layers=2)
    torch.manual_seed(0)
    fast = FlowModel(cfg).to(dtype)
    perturb_(fast, 0.1)
    ref = copy.deepcopy(fast)
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    runs = []
    for model, use_ref in ((fast, False), (ref, True)):
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        model.train()
        trace = []
        for step in range(3):
            torch.manual_seed(step)
            if use_ref:
                with reference_lstm():
                    loss = model.bits_per_dim(x).mean()
            else:
                loss = model.bits_per_dim(x).mean()
            opt.zero_grad()
            loss.backward()
            trace.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
            opt.step()
        runs.append(trace)
    for (loss, grads), (ref_loss, ref_grads) in zip(*runs):
        assert torch.equal(loss, ref_loss)
        assert all(torch.equal(g, r) for g, r in zip(grads, ref_grads))
    assert all(torch.equal(p, q) for p, q in zip(fast.parameters(), ref.parameters()))


def test_ar_prior_sampling_bitwise_equal_to_reference(reference_lstm):
    from attnflow_core import ARChannelPrior

    for size in (3, 6):  # the step() path of both recurrent forms
        prior = ARChannelPrior(4, context_channels=2, hidden=8, layers=2, kernel=3)
        perturb_(prior, 0.3)
        ctx = torch.randn(2, 2, size, size)
        torch.manual_seed(5)
        z = prior.sample((2, 4, size, size), ctx, temperature=0.7)
        with reference_lstm():
            torch.manual_seed(5)
            assert torch.equal(z, prior.sample((2, 4, size, size), ctx, temperature=0.7))


def _graph_nodes(t):
    seen, stack, names = set(), [t.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    return names


def test_convlstm_backward_does_not_index_the_sequence_per_step():
    """Indexing the input gates ``gx[t]`` per step makes each step's backward write a zero tensor of the
    whole sequence (O(T²) memory traffic); the graph must instead split the sequence once, and run the
    recurrent product only for steps after the zero state (T − 1 per layer on the dense path)."""
    t_len, layers = 12, 2
    lstm = ConvLSTM(4, layers=layers, kernel=3, dilation=1)
    x = torch.randn(t_len, 2, 4, 3, 3, requires_grad=True)
    names = _graph_nodes(lstm.run_sequence(x))
    assert names.count("SelectBackward0") == 0, "per-step indexing of the sequence in the graph"
    assert names.count("UnbindBackward0") == layers
    assert names.count("AddmmBackward0") == layers * (t_len - 1)
