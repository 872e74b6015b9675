"""Likelihood evaluation: the whole split, seeded, restoring the RNG."""
import torch

from attnflow_core import FlowModel
from attnflow_core.metrics import evaluate_bpd

TINY = dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1, hidden=8, attention="imap")


def test_evaluation_covers_the_whole_split(digits, device, dtype):
    _, te = digits
    torch.manual_seed(0)
    m = FlowModel(TINY).to(device, dtype)
    m.train()
    m.log_prob(m.dequantize(te.images[:64].to(device)))
    ev = evaluate_bpd(m, te.images, batch_size=100)
    assert ev["n"] == len(te) and len(te) % 100 != 0
    assert ev == evaluate_bpd(m, te.images, batch_size=100)  # seeded dequantisation
    state = torch.get_rng_state()
    evaluate_bpd(m, te.images[:10])
    assert torch.equal(state, torch.get_rng_state())
