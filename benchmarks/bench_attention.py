"""Benchmarks: what iMap/iTrans cost on top of the backbone, and our Glow against normflows' Glow.

    python benchmarks/bench_attention.py --scale cpu      # a few minutes on a laptop CPU
    python benchmarks/bench_attention.py --scale paper    # MNIST L=3 K=4 C=96, for a GPU
    python benchmarks/bench_attention.py --scale smoke    # under a minute: checks that it runs

Part 1 (supp. Table 1; the timing code lives in attnflow_core.repro.timing, shared with the
supp_table1_timings notebook): for the mARFlow backbone alone, with iMap and with iTrans (positions 3
and 4, the paper's best; iTrans with 1 and 5 heads), the median training-step time (forward +
backward + optimiser step) after warm-up, log_prob time, sampling time for a batch and peak
memory, with ratios to the backbone beside the paper's.
Part 2: the same Glow (levels, steps, hidden width, batch, data, seed, optimiser) built with
attnflow_core and with normflows, trained side by side on identical batches: step-time ratio
and test bits/dim after the same steps.

Writes results/benchmarks/{attention_cost,normflows_glow}_<scale>_<device>.csv and a figure.
Timings: all variants live in one process and are timed round-robin (each round times every
variant once), so drift in machine speed hits all alike; ratios are medians of per-round ratios.
Peak memory: each variant in a fresh process on the CPU (peak RSS), or CUDA's max allocated.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from attnflow_core import FlowModel
from attnflow_core.core.io import save_figure, write_text
from attnflow_core.data import load_dataset
from attnflow_core.repro.provenance import git_commit, hardware_label
from attnflow_core.repro.timing import (
    PAPER_TEST_S,
    PAPER_TRAIN_DAYS,
    SCALES,
    measure_memory,
    measure_timings,
    run_isolated,
    timed,
    timing_args,
)
from attnflow_core.training import pick_device, warmup_factor

REPO = Path(__file__).resolve().parent.parent

# part 2 (ours vs normflows' Glow) per scale; part 1's model and timing settings are the package's SCALES
GLOW = {
    "smoke": dict(levels=2, steps=2, hidden=32, dataset="mnist", convention="standard", batch=32, train_steps=50,
                  test_images=500),
    "cpu": dict(levels=2, steps=4, hidden=64, dataset="mnist", convention="standard", batch=32, train_steps=300,
                test_images=2000),
    "paper": dict(levels=3, steps=4, hidden=96, dataset="mnist", convention="padded", batch=32, train_steps=2000,
                  test_images=10000),
}


# ---------------------------------------------------------------------------------- normflows
def build_normflows_glow(image_shape, levels: int, steps: int, hidden: int):
    import normflows as nf

    c, h, w = image_shape
    q0, flows, merges = [], [], []
    for i in range(levels):  # i = 0 is the coarsest level, as normflows orders them
        blocks = [nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
                  for _ in range(steps)]
        flows.append(blocks + [nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            shape = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
        else:
            shape = (c * 2 ** (levels + 1), h // 2 ** levels, w // 2 ** levels)
        q0.append(nf.distributions.DiagGaussian(shape))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def train_glow_pair(args: dict) -> list[dict]:
    """Train our Glow and normflows' Glow side by side: the same batches, dequantisation noise,
    optimiser and schedule; their steps alternate (and which goes first alternates), so the
    step-time ratio is a median of per-step ratios taken under the same machine conditions."""
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    g = args["glow"]
    tr = load_dataset(g["dataset"], "train", root=args["data_root"], convention=g["convention"])
    te = load_dataset(g["dataset"], "test", root=args["data_root"], convention=g["convention"],
                      limit=g["test_images"])
    shape = tuple(tr.images.shape[1:])
    dims = math.prod(shape)
    torch.manual_seed(0)
    ours = FlowModel(dict(backbone="glow", coupling="affine", attention="none", image_shape=shape,
                          levels=g["levels"], steps=g["steps"], hidden=g["hidden"])).to(device)
    torch.manual_seed(0)
    theirs = build_normflows_glow(shape, g["levels"], g["steps"], g["hidden"]).to(device)
    impls = {
        "attnflow_core": (ours, lambda t: ours.log_prob(t - 0.5)),  # our model space is [-0.5, 0.5]
        "normflows": (theirs, lambda t: theirs.log_prob(t, None)),  # [0, 1]: a shift, same density
    }
    opts = {k: torch.optim.Adamax(m.parameters(), lr=1e-3) for k, (m, _) in impls.items()}

    def bpd(lp):
        return -(lp - dims * math.log(256.0)) / (dims * math.log(2.0))

    def batch(images, idx, gen):
        x = images[idx].to(device).float()
        return (x + torch.rand(x.shape, generator=gen).to(device)) / 256.0

    idx_gen, noise_gen = torch.Generator().manual_seed(2), torch.Generator().manual_seed(1)
    times = {k: [] for k in impls}
    losses = {k: [] for k in impls}
    for m, _ in impls.values():
        m.train()
    for step in range(g["train_steps"]):
        xb = batch(tr.images, torch.randint(0, tr.images.shape[0], (g["batch"],), generator=idx_gen), noise_gen)
        order = list(impls) if step % 2 == 0 else list(reversed(impls))
        for k in order:
            model, log_prob = impls[k]
            opt = opts[k]
            for group in opt.param_groups:
                group["lr"] = 1e-3 * warmup_factor(step, 50)
            def train_step():
                loss = bpd(log_prob(xb)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 50.0)
                opt.step()
                losses[k].append(float(loss.detach()))

            times[k].append(timed(train_step, device))
    rows = []
    test_gen = torch.Generator().manual_seed(3)
    test_batches = [(i, min(i + 500, te.images.shape[0])) for i in range(0, te.images.shape[0], 500)]
    test_x = [batch(te.images, torch.arange(a, b), test_gen) for a, b in test_batches]  # same noise for both
    ratio = statistics.median(a / b for a, b in zip(times["attnflow_core"][10:], times["normflows"][10:]))
    for k, (model, log_prob) in impls.items():
        model.eval()
        with torch.no_grad():
            v = torch.cat([bpd(log_prob(x)).cpu() for x in test_x])
        rows.append({"impl": k, "params": sum(p.numel() for p in model.parameters()),
                     "median_step_s": statistics.median(times[k][10:]), "steps": len(losses[k]),
                     "final_train_bpd": losses[k][-1], "test_bpd": float(v.mean()), "test_images": int(v.numel()),
                     "step_time_ratio_vs_normflows": ratio if k == "attnflow_core" else 1.0,
                     "dataset": f"{g['dataset']} ({g['convention']}, {'×'.join(map(str, shape))})",
                     "levels": g["levels"], "K": g["steps"], "hidden": g["hidden"], "batch": g["batch"],
                     "optimizer": "Adamax lr 1e-3, 50 warm-up steps, clip 50"})
    return rows


# ---------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=SCALES, default="cpu")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--data-root", default=None, help="data root (default: $ATTNFLOW_DATA, else ~/.cache/attnflow/data)")
    p.add_argument("--out", default=str(REPO / "results" / "benchmarks"))
    p.add_argument("--skip-normflows", action="store_true")
    p.add_argument("--skip-attention", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the loss (GPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-tf32", action="store_true")
    a = p.parse_args(argv)

    import pandas as pd

    device = pick_device(a.device)
    isolate = device.type == "cpu"
    meta = {"scale": a.scale, "device": str(device), "hardware": hardware_label(device), "torch": torch.__version__,
            "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M"), "compile": a.compile,
            "channels_last": a.channels_last, "tf32": not a.no_tf32 and device.type == "cuda"}
    out = Path(a.out)
    tag = f"{a.scale}_{device.type}"
    print(f"benchmarks: {meta}", flush=True)

    if not a.skip_attention:
        args = timing_args(a.scale, device, a.threads, compile=a.compile, channels_last=a.channels_last,
                           tf32=not a.no_tf32)
        rows = run_isolated(measure_timings, args, isolate)
        for r, v in zip(rows, args["variants"]):
            r["peak_mem_mb"] = run_isolated(measure_memory, dict(args, variant=v), isolate)
            r["peak_mem_kind"] = "cuda max allocated" if device.type == "cuda" else "process peak RSS"
            print(f"  {r['variant']:17s} step {r['train_step_s'] * 1e3:8.1f} ms   log_prob {r['log_prob_s'] * 1e3:8.1f} ms   "
                  f"sample {r['sample_batch_s']:7.2f} s   peak {r['peak_mem_mb']:8.0f} MB", flush=True)
        df = pd.DataFrame(rows)
        df["peak_mem_ratio"] = df["peak_mem_mb"] / df["peak_mem_mb"].iloc[0]
        model = SCALES[a.scale]["model"]
        df["paper_train_days"] = df["attention"].map(PAPER_TRAIN_DAYS)
        df["paper_test_s"] = df["attention"].map(PAPER_TEST_S)
        df["model"] = str({k: v for k, v in model.items() if k != "image_shape"}) + f" on {model['image_shape']}"
        for k, v in meta.items():
            df[k] = v
        write_text(out / f"attention_cost_{tag}.csv", df.to_csv(index=False))
        _figure(df, out / f"attention_cost_{tag}.png", meta)
        print(df[["variant", "train_step_ratio", "paper_train_ratio", "log_prob_ratio", "paper_test_ratio",
                  "sample_batch_ratio", "peak_mem_ratio"]].round(3).to_string(index=False), flush=True)

    if not a.skip_normflows:
        rows = run_isolated(train_glow_pair, dict(glow=GLOW[a.scale], device=str(device), threads=a.threads,
                                                  data_root=a.data_root), isolate)
        df = pd.DataFrame(rows)
        for r in rows:
            print(f"  {r['impl']:14s} step {r['median_step_s'] * 1e3:7.1f} ms   test bpd {r['test_bpd']:.4f}   "
                  f"params {r['params']}", flush=True)
        for k, v in meta.items():
            df[k] = v
        write_text(out / f"normflows_glow_{tag}.csv", df.to_csv(index=False))
        print(df[["impl", "median_step_s", "step_time_ratio_vs_normflows", "test_bpd", "params"]].to_string(index=False))
    return 0


def _figure(df, path: Path, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    xs = range(len(df))
    ax.bar([i - 0.2 for i in xs], df["train_step_ratio"], 0.4, label="ours: train step / backbone")
    ax.bar([i + 0.2 for i in xs], df["paper_train_ratio"], 0.4, label="paper: train time / backbone", alpha=0.6)
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_xticks(list(xs), df["variant"], rotation=25, fontsize=8, ha="right")
    ax.set_ylabel("ratio to backbone")
    ax.set_title(f"Attention overhead ({meta['scale']} scale, {meta['hardware']}, torch {meta['torch']})", fontsize=8)
    ax.legend(fontsize=8)
    save_figure(path, fig, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
