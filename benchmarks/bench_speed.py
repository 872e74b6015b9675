"""Benchmark: the ConvLSTM prior's recurrence before/after and sampling throughput of every family.

    python benchmarks/bench_speed.py                 # CPU scale (about two minutes on one idle core)
    python benchmarks/bench_speed.py --scale smoke   # seconds: checks that it runs

Part 1: one training step (bits/dim of a uint8 batch, backward, Adam step) of mARFlow on 3×32×32 (affine
couplings, L=3, K=4, hidden 32, priors of 16 channels × 2 ConvLSTM layers, batch 16) with the ConvLSTM's
recurrence as it was ("before": a private copy of our old ``run_sequence`` below, which indexes the
input gates ``gx[t]`` per step and runs the recurrent product on the zero state) and as it is ("after").
Two copies of one model, same batch; their losses are checked bit for bit equal every round. Prints
``RATIO convlstm_marflow_step: <after/before> (target <= 0.85)``.

Part 2: ``sample()`` of a small model of every family (glow, marflow, srflow, fullglow, resflow), per
image, "after" (with the finiteness check of the samples: one host sync per call) against "before" (the
engine's decode without it, ``_draw``, which is the old ``sample`` path), and images/s.
Also the reads of tensor values by the package per loss (bits/dim of uint8 batches and backward) of
every family: 0, but for residual flows' roulette, which draws its series length on the CPU (no device
sync).

Timing: one process, one thread, round-robin (each round times every variant once, who goes first
alternating), medians of per-round ratios (attnflow_core.repro.timing.timed).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import types
from collections import Counter

import torch
import torch.nn.functional as F

from attnflow_core import build_model
from attnflow_core.core.checks import count_host_reads
from attnflow_core.nn import ConvLSTM
from attnflow_core.repro.provenance import git_commit, hardware_label
from attnflow_core.repro.timing import timed
from attnflow_core.testing import tiny_cond
from attnflow_core.training import pick_device

MARFLOW = dict(family="multiscale", backbone="marflow", coupling="affine", image_shape=(3, 32, 32), levels=3,
               steps=4, hidden=32, prior_hidden=16, prior_layers=2)
SAMPLERS = {
    "glow": dict(family="multiscale", backbone="glow", coupling="affine", image_shape=(3, 32, 32), levels=3, steps=4,
                 hidden=32),
    "marflow": MARFLOW,
    "srflow": dict(family="srflow", image_shape=(3, 32, 32), levels=3, steps=4, hidden=32, nf=16, nb=2, gc=8),
    "fullglow": dict(family="fullglow", image_shape=(3, 32, 32), label_channels=3, levels=2, steps=4, hidden=32,
                     cond_hidden=16),
    "resflow": dict(family="resflow", image_shape=(3, 32, 32), scales=(2, 2, 2), hidden=64, fc_blocks=1,
                    fc_hidden=32),
}
SCALES = {"cpu": dict(batch=16, rounds=25, warmup=2, sample_batch=8, sample_rounds=5),
          "smoke": dict(batch=4, rounds=3, warmup=1, sample_batch=2, sample_rounds=2)}


# -- "before": a private copy of our ConvLSTM recurrence as of commit f08d647 ----------------------------
def _old_recurrent(self, conv, h, w, like):
    if h * w > self.dense_max_pixels:
        return conv
    n_in = self.hidden * h * w
    basis = torch.eye(n_in, dtype=like.dtype, device=like.device).view(n_in, self.hidden, h, w)
    mat = F.conv2d(basis, conv.weight, None, conv.stride, conv.padding, conv.dilation).flatten(1)
    bias = conv.bias.repeat_interleave(h * w)
    return lambda t: torch.addmm(bias, t.flatten(1), mat).view(t.shape[0], 4 * self.hidden, h, w)


def _old_cell(gates, c):
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _old_run_sequence(self, x):
    t_len, b = x.shape[:2]
    hh_, ww_ = x.shape[3:]
    for ih, hh in zip(self.ih, self.hh):
        gx = ih(x.flatten(0, 1)).view(t_len, b, 4 * self.hidden, hh_, ww_)
        rec = _old_recurrent(self, hh, hh_, ww_, x)
        h = x.new_zeros(b, self.hidden, hh_, ww_)
        c = torch.zeros_like(h)
        outs = []
        for t in range(t_len):
            h, c = _old_cell(gx[t] + rec(h), c)
            outs.append(h)
        x = torch.stack(outs)
    return x


def convlstm_step(s, dev):
    torch.manual_seed(0)
    after = build_model(MARFLOW).to(dev)
    x = torch.randint(0, 256, (s["batch"], *after.image_shape), dtype=torch.uint8, device=dev)
    after.train()
    after.bits_per_dim(x)  # data-dependent initialisation, then two identical copies
    before = copy.deepcopy(after)
    for m in before.modules():
        if isinstance(m, ConvLSTM):
            m.run_sequence = types.MethodType(_old_run_sequence, m)
    opts = {k: torch.optim.Adam(m.parameters(), 1e-4) for k, m in (("before", before), ("after", after))}
    models = {"before": before, "after": after}
    losses = {}

    def step(k):
        torch.manual_seed(1)  # the same dequantisation noise for both
        loss = models[k].bits_per_dim(x).mean()
        opts[k].zero_grad(set_to_none=True)
        loss.backward()
        opts[k].step()
        losses[k] = loss.detach()

    times = {k: [] for k in models}
    same = True
    for r in range(s["warmup"] + s["rounds"]):
        for k in (("before", "after") if r % 2 else ("after", "before")):  # alternate who goes first
            t = timed(lambda: step(k), dev)
            if r >= s["warmup"]:
                times[k].append(t)
        same = same and torch.equal(losses["before"], losses["after"])
    ratio = statistics.median(a / b for a, b in zip(times["after"], times["before"]))
    print(f"# mARFlow 3x32x32 training step (affine, L3 K4 h32, prior 16x2, batch {s['batch']}): before "
          f"{1e3 * statistics.median(times['before']):.1f} ms, after {1e3 * statistics.median(times['after']):.1f} ms; "
          f"losses bit-identical in every round: {same}")
    print(f"RATIO convlstm_marflow_step: {ratio:.3f} (target <= 0.85)")


def sampling(s, dev):
    built = {}
    for name, cfg in SAMPLERS.items():
        torch.manual_seed(0)
        m = build_model(cfg).to(dev)
        x = torch.randint(0, 256, (4, *m.image_shape), dtype=torch.uint8, device=dev)
        m.train()
        with torch.no_grad():
            m.bits_per_dim(x, tiny_cond(m, 4, dev))  # data-dependent initialisation
        with count_host_reads() as reads:
            m.bits_per_dim(x, tiny_cond(m, 4, dev)).mean().backward()
        own = Counter(r.split(" at ")[1].split("attnflow_core/")[-1] for r in reads if "attnflow_core" in r)
        where = "; ".join(f"{k} x{v}" for k, v in own.items())
        print(f"INFO host_reads_per_loss {name}: {sum(own.values())} (bits_per_dim of uint8 images + backward"
              f"{': ' + where if where else ''})")
        m.eval()
        n = s["sample_batch"]
        cond = tiny_cond(m, n, dev)

        def before(m=m, cond=cond, n=n):  # the old sample(): encode the condition, draw, decode
            with torch.no_grad():
                m._draw(m._encode_cond(cond), n, 0.7)

        def after(m=m, cond=cond, n=n):
            m.sample(cond if cond is not None else n, 0.7)

        built[name] = (n, before, after)
    times = {name: {"before": [], "after": []} for name in built}
    for r in range(1 + s["sample_rounds"]):
        for name, (_, before, after) in built.items():
            for k, fn in ((("before", before), ("after", after)) if r % 2 else (("after", after), ("before", before))):
                torch.manual_seed(r)  # the same latents for both (a residual flow's inverse work depends on them)
                t = timed(fn, dev)
                if r:
                    times[name][k].append(t)
    for name, (n, _, _) in built.items():
        tb, ta = times[name]["before"], times[name]["after"]
        per = statistics.median(ta) / n
        ratio = statistics.median(a / b for a, b in zip(ta, tb))
        print(f"INFO sample_per_image {name}: {1e3 * per:.2f} ms/image ({1 / per:.1f} images/s, batch {n}, T=0.7); "
              f"before {1e3 * statistics.median(tb) / n:.2f} ms/image; ratio after/before {ratio:.3f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    p.add_argument("--device", default="cpu", help="cpu (the measurement in docs/benchmarks.md), cuda, or auto")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    dev = pick_device(a.device)
    s = SCALES[a.scale]
    print(f"# bench_speed ({a.scale} scale); hardware: {hardware_label(dev)}; torch {torch.__version__}; "
          f"threads {torch.get_num_threads()}; commit {git_commit()}; {s['rounds']} timed rounds after "
          f"{s['warmup']} warm-up, medians of per-round ratios")
    convlstm_step(s, dev)
    sampling(s, dev)


if __name__ == "__main__":
    main()
