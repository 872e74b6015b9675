"""Benchmark: sampling cost of mixture-logistic mARFlow, before and after the cheaper coupling inverse.

    python benchmarks/bench_mixlogistic.py             # CPU, about a minute
    python benchmarks/bench_mixlogistic.py --device cuda

Model: mARFlow with mixture-logistic couplings on 1×28×28 (MNIST), L = 2, K = 4, hidden 32, 8 components,
1 block, prior 16 hidden × 2 layers; ActNorm initialised on a batch, all weights perturbed (so ``a`` and ``t``
are not at their zero start). "Before" is a private copy of our previous inverse (fixed 60 / 100 bisection
steps, each computing log F, log(1 − F) and the unused log-pdf); "after" is
:func:`attnflow_core.flows.coupling.mixture_inverse_cdf` (one log-sum-exp per step, step count derived from
the brackets and the dtype). Both see the same ``u`` (the coupling's current, mar-scf, form).
Timing: one process, one thread, round-robin (each round times log_prob and sample of both variants),
the median over rounds of the per-round ratio (sample/log_prob after) / (sample/log_prob before).
Round-trip errors (float32): max |decode(encode(x)) − x| on MNIST test images and
max |encode(decode(z)) − z| on sampled latents, for both variants.
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from attnflow_core.data import load_dataset
from attnflow_core.flows import coupling as coupling_module
from attnflow_core.flows.coupling import MixLogisticCoupling
from attnflow_core.models import FlowConfig, FlowModel
from attnflow_core.repro.timing import timed
from attnflow_core.testing import prepare_model

TARGET = 0.45


def _old_log_cdf_terms(x, logit_pi, mu, log_s):
    """Our previous ``mixture_log_cdf_terms`` (f08d647), for the "before" side."""
    log_pi = torch.log_softmax(logit_pi, dim=1)
    z = (x.unsqueeze(1) - mu) * torch.exp(-log_s)
    log_f = torch.logsumexp(log_pi + F.logsigmoid(z), dim=1)
    log_1mf = torch.logsumexp(log_pi + F.logsigmoid(-z), dim=1)
    log_pdf = torch.logsumexp(log_pi + F.logsigmoid(z) + F.logsigmoid(-z) - log_s, dim=1)
    return log_f, log_1mf, log_pdf


def _old_inverse_cdf(u, logit_pi, mu, log_s):
    """Our previous inverse (f08d647), kept here for the "before" side."""
    ends = mu + torch.exp(log_s) * u.unsqueeze(1)
    lo, hi = ends.min(dim=1).values, ends.max(dim=1).values
    iters = 100 if u.dtype == torch.float64 else 60
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        log_f, log_1mf, _ = _old_log_cdf_terms(mid, logit_pi, mu, log_s)
        above = (log_f - log_1mf) > u
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    return 0.5 * (lo + hi)


NEW = coupling_module.mixture_inverse_cdf
VARIANTS = {"before": _old_inverse_cdf, "after": NEW}


def use(name: str) -> None:
    coupling_module.mixture_inverse_cdf = VARIANTS[name]  # the coupling looks the function up at call time


def images(n: int) -> torch.Tensor:
    try:
        return load_dataset("mnist", "test").images[:n]
    except Exception:  # no data root: random 8-bit images (timings do not depend on content)
        return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cfg = FlowConfig(backbone="marflow", coupling="mixlogistic", image_shape=(1, 28, 28), levels=2, steps=4,
                     hidden=32, components=8, blocks=1, dropout=0.0, prior_hidden=16, prior_layers=2)
    model = FlowModel(cfg).to(dev)
    pix = images(args.batch).to(dev)
    x = model.dequantize(pix)
    prepare_model(model, x, scale=0.05)
    assert any(isinstance(m, MixLogisticCoupling) for m in model.modules())

    with torch.no_grad():
        zs, _, _ = model.encode(x)
        errors = {}
        for name in VARIANTS:
            use(name)
            torch.manual_seed(1)
            z_s = model.sample_latents(args.batch)
            x_s = model.decode(z_s)
            back, _, _ = model.encode(x_s)
            errors[name] = (float((model.decode(zs) - x).abs().max()),
                            max(float((a - b).abs().max()) for a, b in zip(back, z_s) if a is not None))
        ratios, per = [], {n: [] for n in VARIANTS}
        for _ in range(1 + args.rounds):  # the first round warms up
            r = {}
            for name in VARIANTS:
                use(name)
                lp = timed(lambda: model.log_prob(x), dev)
                sm = timed(lambda: model.sample(args.batch), dev)
                r[name] = sm / lp
            ratios.append(r["after"] / r["before"])
            for n in VARIANTS:
                per[n].append(r[n])
    use("after")
    ratio = statistics.median(ratios[1:])
    for name in VARIANTS:
        print(f"{name:6s}: sample/log_prob per image {statistics.median(per[name][1:]):.2f}; round trip "
              f"x->z->x {errors[name][0]:.2e}, z->x->z {errors[name][1]:.2e}")
    print(f"RATIO mixlogistic_sample_over_logprob: {ratio:.3f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
