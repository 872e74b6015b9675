"""Priors (autoregressive structure) and parameter counts against the paper and the reference code."""
import torch

from attnflow_core import ARChannelPrior, build_model, paper_config

from conftest import perturb_

PAPER_MARFLOW = 46_011_410  # Table 2 "46.01"; exact count of the reference mARFlow code (PEERS.md)


def test_ar_prior_is_autoregressive_over_channels():
    prior = ARChannelPrior(5, context_channels=3, hidden=8, layers=2, kernel=3).double()
    perturb_(prior, 0.3)
    z = torch.randn(1, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    ctx = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    mean, log_std = prior.params(z, ctx)
    for j in range(5):
        g, = torch.autograd.grad(mean[0, j].sum() + log_std[0, j].sum(), z, retain_graph=True)
        assert g[0, j:].abs().max() == 0, f"channel {j} sees channels >= {j}"
        if j > 0:
            assert g[0, :j].abs().max() > 0, f"channel {j} ignores its predecessors"


def test_ar_prior_sequential_sampling_matches_teacher_forcing():
    prior = ARChannelPrior(4, context_channels=2, hidden=8, layers=3, kernel=5, dilation=2).double()
    perturb_(prior, 0.3)
    ctx = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    z = prior.sample(ctx, (2, 4, 6, 6), temperature=0.0)  # the mean, step by step
    mean, _ = prior.params(z, ctx)
    torch.testing.assert_close(z, mean)


def test_marflow_parameters_match_paper_table2():
    base = build_model(paper_config(attention="none")).num_parameters()
    assert abs(base - PAPER_MARFLOW) / PAPER_MARFLOW < 0.05
    imap = build_model(paper_config(attention="imap")).num_parameters()
    itrans = build_model(paper_config(attention="itrans")).num_parameters()
    # Table 2: iMap 46.03 M (+0.02 M), iTrans 46.25 M (+0.24 M)
    assert 0.005e6 < imap - base < 0.03e6
    assert 0.20e6 < itrans - base < 0.28e6


def test_affine_marflow_flow_part_matches_reference_count():
    m = build_model(backbone="marflow", coupling="affine", levels=3, steps=4, hidden=96, image_shape=(3, 32, 32))
    assert sum(p.numel() for p in m.levels.parameters()) == 576_528  # PEERS.md, reference code
    prior = sum(p.numel() for p in m.priors.parameters())
    assert abs(prior - 1_524_914) / 1_524_914 < 0.05  # ours has no unused top-level condition net


def test_convlstm_dense_path_equals_convolution():
    from attnflow_core.priors import ConvLSTM
    lstm = ConvLSTM(6, layers=2, kernel=5, dilation=2).double()
    perturb_(lstm)
    x = torch.randn(5, 3, 6, 4, 4, dtype=torch.float64)
    fast = lstm.run_sequence(x)
    ConvLSTM.dense_max_pixels = 0
    try:
        slow = lstm.run_sequence(x)
    finally:
        ConvLSTM.dense_max_pixels = 16
    torch.testing.assert_close(fast, slow)
