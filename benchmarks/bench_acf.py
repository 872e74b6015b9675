"""Benchmark: a training step of Residual Flow + ACF attention against the plain Residual Flow step at 1×28×28,
global attention (ACF's code; "before") against windowed attention ("after").

    python benchmarks/bench_acf.py                 # the contractive table's model on 28×28 digits (~3 min, CPU)
    python benchmarks/bench_acf.py --scale cpu     # 3 scales (28×28, 14×14, 7×7), hidden 64 (~1.5 min)
    python benchmarks/bench_acf.py --scale paper   # MNIST reference-size blocks (hidden 512), for a GPU

Models: :class:`~attnflow_core.models.resflow.ResFlowModel` on 1×28×28 with ``scales`` conv blocks per scale
(default: the contractive table's smoke model, 1 block at 28×28 and 1 at 14×14, hidden 32), one FC block, the unbiased log-det (Poisson λ = 2, 2 exact terms, Neumann gradient), Adam
1e-3 and the spectral-norm refresh after every step (:meth:`training_hooks`). Variants differ only in
``attention`` / ``attention_window``: none; ACF L2 (and LipschitzNorm dot product) over all positions, the
package's ``attention_window=None`` path, unchanged, so it *is* the old code; the same with 7×7 windows
(global at 7×7, where the window covers the map). Same batches and roulette draws for every variant (one seed
per round). Timing: one process, round-robin (each round times one step of every variant, the windowed ones
right after the Residual Flow step they are divided by), medians of per-round ratios, one thread unless
``--threads``. The ``# L2 bound factor`` lines give ``κ(N)`` of the certificate (the shrinkage of ``F``)
globally and per window. Printed figures only (not a test).
"""
from __future__ import annotations

import argparse
import statistics

import torch
from _common import dequantised_batches, round_robin  # benchmarks/_common.py (scripts run from the repository root)

from attnflow_core.models import build_model
from attnflow_core.nn.lipschitz_attention import l2_attention_constant
from attnflow_core.repro.provenance import git_commit, hardware_label
from attnflow_core.training import pick_device

SCALES = {# the contractive table's smoke model (its SMOKE_MODEL["resflow"], batch 32) on full-size digits
          "table": dict(scales=(1, 1), hidden=32, batch=32, rounds=5, warmup=1),
          "cpu": dict(scales=(2, 2, 2), hidden=64, batch=8, rounds=7, warmup=2),
          "paper": dict(scales=(4, 4, 4), hidden=512, batch=64, rounds=10, warmup=3)}
WINDOW = 7  # tiles 28×28 and 14×14; covers 7×7
# round order: the fast variants next to the Residual Flow step they are divided by, the slow ones after
VARIANTS = {"resflow": dict(),
            f"acf_l2 window {WINDOW} (after)": dict(attention="acf_l2", attention_window=WINDOW),
            f"acf_dot window {WINDOW} (after)": dict(attention="acf_dot", attention_window=WINDOW),
            "acf_l2 global (before)": dict(attention="acf_l2"),
            "acf_dot global (before)": dict(attention="acf_dot")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="table")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto: the GPU when there is one, else the CPU")
    p.add_argument("--rounds", type=int, default=0, help="timed rounds (default: the scale's)")
    a = p.parse_args(argv)
    s = dict(SCALES[a.scale], **({"rounds": a.rounds} if a.rounds else {}))
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    base = dict(family="resflow", image_shape=(1, 28, 28), scales=s["scales"], hidden=s["hidden"], fc_blocks=1,
                fc_hidden=64, logit_alpha=1e-6)
    data, src = dequantised_batches("mnist", s["rounds"] + s["warmup"] + 1, s["batch"], (1, 28, 28))
    data = [d.to(dev) for d in data]
    models, opts, hooks = {}, {}, {}
    for name, kw in VARIANTS.items():
        torch.manual_seed(0)
        m = build_model({**base, **kw}).to(dev).train()
        with torch.no_grad():  # data-dependent ActNorm initialisation on the first batch, outside the timing
            m.log_prob(data[0])
        models[name], opts[name], hooks[name] = m, torch.optim.Adam(m.parameters(), 1e-3), m.training_hooks(0)

    def step(name, x):
        m, opt = models[name], opts[name]
        loss = -m.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for h in hooks[name]:
            h(1, m, opt)
        return float(loss.detach())

    times = round_robin({name: (lambda x, name=name: step(name, x)) for name in VARIANTS}, data[1:], s["warmup"], dev)
    ref = "resflow"
    print(f"# Residual Flow (+ ACF) training step at 1×28×28 ({a.scale} scale; scales {s['scales']}, hidden "
          f"{s['hidden']}, 1 FC block, batch {s['batch']}; {src})")
    print(f"# hardware: {hardware_label(dev)}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"commit {git_commit()}; {len(times[ref])} timed rounds after {s['warmup']} warm-up")
    ratio = {}
    for name in VARIANTS:
        ratio[name] = statistics.median(t / b for t, b in zip(times[name], times[ref]))
        cert = max(models[name].lipschitz_certificates().values())
        print(f"{name:26s} median step {1e3 * statistics.median(times[name]):9.1f} ms   ratio to resflow "
              f"{ratio[name]:7.3f}   max certified Lip(g) {cert:.4f}")
    for side in (28, 14, 7)[:len(s["scales"])]:  # the L2 bound's N-dependent factor: the shrinkage of F
        n, n_w = side * side, min(WINDOW, side) ** 2
        print(f"# L2 bound factor at {side}×{side}: global κ({n}) = {l2_attention_constant(n):.1f}, "
              f"window κ({n_w}) = {l2_attention_constant(n_w):.1f}")
    print(f"RATIO acf_step_over_resflow: {ratio[f'acf_l2 window {WINDOW} (after)']:.3f} (target <= 3)")
    print(f"RATIO acf_global_step_over_resflow (before): {ratio['acf_l2 global (before)']:.3f}")
    print(f"RATIO acf_dot_step_over_resflow: {ratio[f'acf_dot window {WINDOW} (after)']:.3f} (target <= 3)")
    print(f"RATIO acf_dot_global_step_over_resflow (before): {ratio['acf_dot global (before)']:.3f}")


if __name__ == "__main__":
    main()
