"""Benchmark: a training step of our Residual Flow against normflows' residual flow at an equal configuration.

    python benchmarks/bench_resflow.py                 # CPU scale (a few minutes)
    python benchmarks/bench_resflow.py --scale paper   # CIFAR-size blocks, for a GPU

Both models: ``K`` × [residual block ``x + g(x)``, ActNorm] on ``C×H×W`` inputs with a standard normal base,
``g = LipSwish → SNConv3×3(C→h) → LipSwish → SNConv1×1(h→h) → LipSwish → SNConv3×3(h→C)`` at coefficient
0.98, the unbiased log-det (Poisson λ = 2, 2 exact terms, 1 sample, Gaussian probe) with the Neumann
gradient, Adam 1e-3, spectral norms refreshed after every step (ours: :class:`SpectralRefresh`, 5 warm-started
power iterations plus the certified gap; normflows: ``update_lipschitz(model, 5)``, its only refresh). Same
batches, same order. Timing: one process, round-robin (each round times one step of every variant), medians
of per-round ratios. normflows additionally runs its memory-saving backward-in-forward (``reduce_memory``);
ours does plain autograd through one VJP. A fourth variant keeps our certificate as it was before the exact
small-map path (circular bound only, a private copy) so that path's step-time cost is measured in the same run
(``RATIO``; ``--size 4`` / ``--size 8`` put the maps where it is used). Printed figures only (not a test).
"""
from __future__ import annotations

import argparse
import statistics
import types

import torch
from _common import dequantised_batches, round_robin  # benchmarks/_common.py (scripts run from the repository root)

from attnflow_core.core.layer import FlowSequence
from attnflow_core.flows.elementwise import FlooredActNorm
from attnflow_core.flows.residual import ResidualBlock
from attnflow_core.nn.lipschitz import SpectralConv2d, SpectralRefresh
from attnflow_core.nn.lipschitz_nets import LipschitzConvNet
from attnflow_core.nn.spectral import conv_norm_upper_bound, matrix_norm_upper_bound
from attnflow_core.priors import StandardNormal
from attnflow_core.repro.provenance import git_commit, hardware_label
from attnflow_core.training import pick_device

SCALES = {"cpu": dict(C=3, H=16, W=16, hidden=64, K=4, batch=32, rounds=15, warmup=3),
          "paper": dict(C=3, H=32, W=32, hidden=512, K=8, batch=64, rounds=20, warmup=5)}


class Ours(torch.nn.Module):
    def __init__(self, c, h, w, hidden, k):
        super().__init__()
        layers = []
        for i in range(k):
            layers += [ResidualBlock(LipschitzConvNet(c, hidden, (h, w), coeff=0.98), c,
                                     logdet=dict(dist="poisson", lam=2.0, n_exact=2, n_samples=1)),
                       FlooredActNorm(c)]
        self.flow = FlowSequence(layers)
        self.base = StandardNormal()

    def loss(self, x):
        z, ld = self.flow(x)
        return -(self.base.log_prob(z) + ld).mean()


def _circular_only_certified_norm(self, weight=None, estimate=0.0, enough=0.0):
    """Private copy of our certificate before the exact small-map path (commit f08d647): circular bound only."""
    w = self.weight if weight is None else weight
    if self.kernel_size == 1:
        return matrix_norm_upper_bound(w)
    return conv_norm_upper_bound(w, self.input_size, self.padding, dense_max=0)


def circular_only(model):
    for m in model.modules():
        if isinstance(m, SpectralConv2d):
            m.certified_norm = types.MethodType(_circular_only_certified_norm, m)
    return model


def theirs(c, h, w, hidden, k):
    import normflows as nf

    flows = []
    for _ in range(k):
        net = nf.nets.LipschitzCNN([c, hidden, hidden, c], [3, 1, 3], lipschitz_const=0.98, init_zeros=False)
        flows += [nf.flows.Residual(net, reduce_memory=True, n_dist="poisson", n_exact_terms=2, n_samples=1),
                  nf.flows.ActNorm((c, 1, 1))]  # per channel, like ours
    return nf.NormalizingFlow(nf.distributions.DiagGaussian((c, h, w), trainable=False), flows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto: the GPU when there is one, else the CPU")
    p.add_argument("--size", type=int, default=0, help="override H = W (small maps use the exact certificate)")
    p.add_argument("--channels", type=int, default=0, help="override C")
    a = p.parse_args(argv)
    s = dict(SCALES[a.scale])
    if a.size:
        s["H"] = s["W"] = a.size
    if a.channels:
        s["C"] = a.channels
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    from normflows.utils.optim import update_lipschitz

    torch.manual_seed(0)
    ours = Ours(s["C"], s["H"], s["W"], s["hidden"], s["K"]).to(dev)
    torch.manual_seed(0)
    ours_u = Ours(s["C"], s["H"], s["W"], s["hidden"], s["K"]).to(dev)  # a twin for the uncertified refresh
    torch.manual_seed(0)
    ours_c = circular_only(Ours(s["C"], s["H"], s["W"], s["hidden"], s["K"]).to(dev))  # the certificate before
    torch.manual_seed(0)
    nfm = theirs(s["C"], s["H"], s["W"], s["hidden"], s["K"]).to(dev)
    data, src = dequantised_batches("cifar10", s["rounds"] + s["warmup"] + 1, s["batch"], (s["C"], s["H"], s["W"]))
    data = [d.to(dev) for d in data]
    refresh, refresh_uncertified = SpectralRefresh(max_iter=5), SpectralRefresh(max_iter=5, certify=False)
    opt_o, opt_u, opt_c, opt_t = (torch.optim.Adam(m.parameters(), 1e-3) for m in (ours, ours_u, ours_c, nfm))
    ours.train(), ours_u.train(), ours_c.train(), nfm.train()
    with torch.no_grad():  # data-dependent ActNorm initialisation on the first batch, outside the timing
        ours.loss(data[0]), ours_u.loss(data[0]), ours_c.loss(data[0]), nfm.forward_kld(data[0])
    update_lipschitz(nfm, 200)

    def step_ours(model, opt, x, hook):
        loss = model.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hook(1, model, opt)
        return float(loss.detach())

    def step_theirs(x):
        loss = nfm.forward_kld(x)
        opt_t.zero_grad(set_to_none=True)
        loss.backward()
        opt_t.step()
        update_lipschitz(nfm, 5)
        return float(loss.detach())

    variants = {"ours (certified refresh)": lambda x: step_ours(ours, opt_o, x, refresh),
                "ours (certified, circular bound only: before)": lambda x: step_ours(ours_c, opt_c, x, refresh),
                "ours (refresh without the certified gap)": lambda x: step_ours(ours_u, opt_u, x, refresh_uncertified),
                "normflows 1.7.3": step_theirs}
    losses = {k: [] for k in variants}
    times = round_robin({name: (lambda x, name=name, fn=fn: losses[name].append(fn(x))) for name, fn in variants.items()},
                        data[1:], s["warmup"], dev)
    base = "normflows 1.7.3"
    print(f"# Residual Flow training step, ours vs normflows ({a.scale} scale; {s['K']} blocks, C={s['C']}, "
          f"{s['H']}×{s['W']}, hidden {s['hidden']}, batch {s['batch']}; {src})")
    print(f"# hardware: {hardware_label(dev)}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"commit {git_commit()}; {len(times[base])} timed rounds after {s['warmup']} warm-up")
    print(f"params: ours {sum(p.numel() for p in ours.parameters()):,}, normflows {sum(p.numel() for p in nfm.parameters()):,}")
    for name in variants:
        ratios = [t / b for t, b in zip(times[name], times[base])]
        print(f"{name:42s} median step {1e3 * statistics.median(times[name]):8.1f} ms   ratio to normflows "
              f"{statistics.median(ratios):.3f}   loss first/last {losses[name][0]:.3f} / {losses[name][-1]:.3f}")
    new, old = "ours (certified refresh)", "ours (certified, circular bound only: before)"
    cost = statistics.median(t / b for t, b in zip(times[new], times[old]))
    print(f"RATIO resflow_step_exact_small_map_certificate_vs_circular_only: {cost:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
