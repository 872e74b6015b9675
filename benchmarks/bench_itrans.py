"""Benchmark: what iTrans (1 head, after the coupling) adds to a Glow training step on standard MNIST.

    python benchmarks/bench_itrans.py              # CPU, one thread (about a minute)
    python benchmarks/bench_itrans.py --rounds 40  # steadier medians

Model: Glow, 2 levels × 4 steps, hidden width 64, affine couplings, on 1×28×28 (standard MNIST; random
8-bit images of that shape: the time does not depend on the pixels), batch 32, Adamax; one training
step = forward + backward + optimiser step. Variants, all built in one process and timed round-robin
(each round times one step of every variant; ratios are medians of per-round ratios to Glow):

* ``glow``           -- no attention;
* ``before``         -- the previous iTrans code with ``patches=49``: on 28×28 the 2×2 grid cannot be built
                        (the last map is 7×7), so 7×7 was the nearest grid that could;
* ``before_auto``    -- the previous iTrans code on the ``patches="auto"`` grids (2×2 on 14×14, 1×1 on 7×7):
                        separates the code's speed-up from the grid change;
* ``after``          -- the current code with ``patches="auto"``.

The previous code is a private copy below (``_OldITrans``), swapped into the same models, so
``before_auto`` and ``after`` share weights; before timing, their log-likelihoods are checked to be
bit-identical and their gradients too (γ's on the 1×1 grid within round-off: it is summed in another order).
Printed figures only (not a test).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys

import torch
import torch.nn.functional as F

from attnflow_core import FlowModel, ITrans
from attnflow_core.repro.provenance import git_commit, hardware_label
from attnflow_core.repro.timing import timed

GLOW = dict(backbone="glow", coupling="affine", image_shape=(1, 28, 28), levels=2, steps=4, hidden=64)
TARGET = 1.3


class _OldITrans(ITrans):
    """The iTrans forward / inverse before this benchmark's change (commit f08d647), for the "before" side:
    the masked half goes patch → map → patch layout, and queries/keys are computed for every grid."""

    contract_exempt = "a benchmark's copy of the old code path"

    def attention_matrix(self, x1, cond=None):
        inp = x1 if cond is None or self.cond_channels == 0 else torch.cat([x1, cond], dim=1)
        b = x1.shape[0]
        q = self._to_patches(self.query(inp))
        k = self._to_patches(self.key(inp))
        n = q.shape[1]
        q = q.view(b, n, self.heads, -1).transpose(1, 2)
        k = k.view(b, n, self.heads, -1).transpose(1, 2)
        d = q.shape[-1]
        temp = F.softplus(self.temperature) + 1e-3
        scores = q @ k.transpose(-1, -2) / (temp * math.sqrt(d))
        a = torch.softmax(scores, dim=-1).mean(dim=1)
        gamma = 1.0 + 1e-3 + F.softplus(self.gamma)
        return a + gamma * torch.eye(n, dtype=a.dtype, device=a.device)

    def _split(self, t, cond):
        self.check_input(t, cond)
        _, c, h, w = t.shape
        m = self.patch_mask(h, w, t)
        tp = self._to_patches(t)
        t1p = tp * m
        return tp, m, t1p, self.attention_matrix(self._from_patches(t1p, c, h, w), cond)

    def forward(self, x, cond=None):
        xp, m, x1p, wmat = self._split(x, cond)
        yp = x1p + wmat @ (xp * (1 - m))
        logdet = (1 - m).sum() * torch.linalg.slogdet(wmat).logabsdet
        return self._from_patches(yp, *x.shape[1:]), logdet

    def inverse(self, y, cond=None):
        yp, m, x1p, wmat = self._split(y, cond)
        x2p = torch.linalg.solve(wmat, yp * (1 - m))
        return self._from_patches(x1p + x2p, *y.shape[1:])


def build(attention: str, patches, old: bool, x: torch.Tensor):
    torch.manual_seed(0)
    model = FlowModel(dict(GLOW, attention=attention, heads=1, position=4, patches=patches))
    if old:
        for m in model.modules():
            if isinstance(m, ITrans):
                m.__class__ = _OldITrans
    model.train()
    model.bits_per_dim(x)  # ActNorm's data-dependent initialisation
    opt = torch.optim.Adamax(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        model.bits_per_dim(x).mean().backward()
        opt.step()

    return model, step


def check_same(a: FlowModel, b: FlowModel, x: torch.Tensor) -> str:
    """The old and the new code path on the same weights: bit-identical log-likelihoods; gradients
    bit-identical except γ's on 1×1 grids (the new code sums it in another order: round-off)."""
    out = []
    xf = (x.float() + 0.5) / 256 - 0.5  # the model space is [-0.5, 0.5]
    for m in (a, b):
        m.zero_grad(set_to_none=True)
        lp = m.log_prob(xf)
        lp.sum().backward()
        # on a 1×1 grid the new code skips queries/keys: no gradient where the old one got exact zeros
        out.append((lp.detach(), {n: torch.zeros_like(p) if p.grad is None else p.grad
                                  for n, p in m.named_parameters()}))
        m.zero_grad(set_to_none=True)
    (lp_a, g_a), (lp_b, g_b) = out
    if not torch.equal(lp_a, lp_b):
        raise SystemExit("the new iTrans code path does not reproduce the old log-likelihoods bit for bit")
    differ = {n: float((g_a[n] - g_b[n]).abs().max() / g_a[n].abs().max()) for n in g_a
              if not torch.equal(g_a[n], g_b[n])}
    if any(not n.endswith(".gamma") or v > 1e-5 for n, v in differ.items()):
        raise SystemExit(f"gradients of the old and new iTrans code differ: {differ}")
    worst = max(differ.values(), default=0.0)
    return (f"log-likelihoods bit-identical; gradients bit-identical for {len(g_a) - len(differ)} of {len(g_a)} "
            f"parameters, the rest (γ on 1×1 grids) within {worst:.1e} relative")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (a.batch, *GLOW["image_shape"]), dtype=torch.uint8, generator=gen)
    variants = {"glow": build("none", 4, False, x), "before": build("itrans", 49, True, x),
                "before_auto": build("itrans", "auto", True, x), "after": build("itrans", "auto", False, x)}
    same = check_same(variants["before_auto"][0], variants["after"][0], x)
    print(f"bench_itrans: {hardware_label(device)}, torch {torch.__version__}, commit {git_commit()}, "
          f"{GLOW} batch {a.batch}, 1 thread")
    print(f"  patch grids per level: before {variants['before'][0].patch_grids}, "
          f"after (patches='auto') {variants['after'][0].patch_grids}")
    print(f"  old vs new code on the 'auto' grids: {same}")
    for _, step in variants.values():
        for _ in range(a.warmup):
            step()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(a.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))  # no variant always runs first
        for k in order:
            times[k].append(timed(variants[k][1], device))
    ratio = {k: statistics.median(t / g for t, g in zip(times[k], times["glow"])) for k in variants}
    for k in variants:
        print(f"  {k:12s} step {statistics.median(times[k]) * 1e3:7.1f} ms   ratio to glow {ratio[k]:.3f}")
    print(f"before: {ratio['before']:.3f} (old code, patches=49), {ratio['before_auto']:.3f} "
          f"(old code, patches='auto' grids)")
    print(f"RATIO itrans_step_over_glow: {ratio['after']:.3f} (target <= {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
