"""What iMap / iTrans cost on top of the mARFlow backbone (supp. Table 1): timing shared by
``benchmarks/bench_attention.py`` and the ``supp_table1_timings`` notebook.

For each variant (backbone alone, with iMap, with iTrans) the median training-step time (forward +
backward + optimiser step) after warm-up, ``log_prob`` time of a batch, sampling time of a batch and
(optionally, in its own process) peak memory. All variants live in one process and are timed
round-robin (each round times every variant once), so drift in machine speed hits all alike; a
variant's ratio to the backbone is the median over rounds of the per-round ratio.
Input: random 8-bit images of the model's shape (timing does not depend on the data).

The paper's numbers (supp. Table 1, CIFAR-10, one TITAN RTX): training 2.5 / 3 / 5 GPU-days for
mARFlow / AttnFlow-iMap / AttnFlow-iTrans at 100 epochs each, test time 0.48 / 0.50 / 0.61 s per image.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import statistics
import time
from typing import Any

import torch

from ..models.multiscale import FlowModel, paper_config

PAPER_TRAIN_DAYS = {"none": 2.5, "imap": 3.0, "itrans": 5.0}  # GPU-days, supp. Table 1 (CIFAR-10)
PAPER_TEST_S = {"none": 0.48, "imap": 0.50, "itrans": 0.61}  # s per image
KINDS = ("train_step_s", "log_prob_s", "sample_batch_s")

# (name, attention, position, heads): the benchmark's grid; the first is the backbone
VARIANTS = [("backbone", "none", 4, 1), ("iMap pos-3", "imap", 3, 1), ("iMap pos-4", "imap", 4, 1),
            ("iTrans pos-3 h1", "itrans", 3, 1), ("iTrans pos-3 h5", "itrans", 3, 5),
            ("iTrans pos-4 h1", "itrans", 4, 1), ("iTrans pos-4 h5", "itrans", 4, 5)]
# supp. Table 1's rows: the configuration of the Table 3 models (attention after the coupling, 5 heads)
SUPP_VARIANTS = [("mARFlow", "none", 4, 5), ("AttnFlow-iMap", "imap", 4, 5), ("AttnFlow-iTrans", "itrans", 4, 5)]

_TINY = dict(backbone="marflow", coupling="mixlogistic", image_shape=(3, 32, 32), levels=3, steps=1, dropout=0.0)
SCALES: dict[str, dict[str, Any]] = {
    # the smoke profile's: Table 3's smoke models (tiny, affine couplings: the mixture-logistic inverse's
    # bisection makes sampling too slow for a smoke run), a few rounds (~20 s on 2 idle CPU cores)
    "smoke": {"model": dict(_TINY, coupling="affine", hidden=16, prior_hidden=8, prior_layers=1),
              "batch": 8, "sample_batch": 8, "warmup": 1, "repeats": 3},
    # the benchmark's CPU scale (~4 min with all seven variants)
    "cpu": {"model": dict(_TINY, hidden=32, blocks=2, components=8, prior_hidden=16, prior_layers=2),
            "batch": 16, "sample_batch": 4, "warmup": 2, "repeats": 15},
    # the paper's CIFAR-10 model (L=3, K=4, C=96, mixture-logistic couplings), batch 32: for a GPU
    "paper": {"model": paper_config(image_shape=(3, 32, 32)).to_dict(), "batch": 32, "sample_batch": 16,
              "warmup": 5, "repeats": 20},
}


def timing_args(scale: str, device: str = "cpu", threads: int = 0, variants=None, **overrides: Any) -> dict:
    """The argument dict of :func:`measure_timings` for a scale of :data:`SCALES`."""
    sc = SCALES[scale]
    args = dict(model=sc["model"], batch=sc["batch"], sample_batch=sc["sample_batch"], warmup=sc["warmup"],
                repeats=sc["repeats"], device=str(device), threads=threads, compile=False, channels_last=False,
                tf32=True, variants=list(variants or VARIANTS))
    args.update(overrides)
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return math.nan


def setup_device(args: dict) -> torch.device:
    torch.manual_seed(0)
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args["tf32"]
        torch.backends.cudnn.allow_tf32 = args["tf32"]
    return device


def build_variant(args: dict, variant: tuple, device: torch.device):
    """The model of one variant and its three timed closures (train step, log_prob, sampling)."""
    _, attn, pos, heads = variant
    cfg = dict(args["model"], attention=attn, position=pos, heads=heads)
    model = FlowModel(cfg).to(device)
    if args["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (args["batch"], *cfg["image_shape"]), dtype=torch.uint8, device=device)
    model.train()
    model.bits_per_dim(x)  # ActNorm's data-dependent initialisation
    opt = torch.optim.Adamax(model.parameters(), lr=1e-4)
    loss_fn = torch.compile(model.bits_per_dim) if args["compile"] else model.bits_per_dim

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(x).mean().backward()
        opt.step()

    xm = model.dequantize(x)

    @torch.no_grad()
    def log_prob():
        model.eval()
        model.log_prob(xm)
        model.train()

    @torch.no_grad()
    def sample():
        model.eval()
        model.sample(args["sample_batch"], 0.7)
        model.train()

    return model, {"train_step_s": step, "log_prob_s": log_prob, "sample_batch_s": sample}


def timed(fn, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def measure_timings(args: dict) -> list[dict]:
    """Median times of every variant of ``args["variants"]`` and their ratios to the first (the backbone)."""
    device = setup_device(args)
    variants = [tuple(v) for v in args.get("variants", VARIANTS)]
    built = [(v, *build_variant(args, v, device)) for v in variants]
    raw = {v[0]: {k: [] for k in KINDS} for v in variants}
    for kind, rounds in (("train_step_s", args["repeats"]), ("log_prob_s", args["repeats"]),
                         ("sample_batch_s", max(3, args["repeats"] // 2))):
        for _v, _, fns in built:  # warm-up
            for _ in range(args["warmup"] if kind == "train_step_s" else 1):
                fns[kind]()
        for _ in range(rounds):
            for v, _, fns in built:
                raw[v[0]][kind].append(timed(fns[kind], device))
    rows = []
    base = raw[variants[0][0]]
    for v, model, _ in built:
        r = {"variant": v[0], "attention": v[1], "position": v[2], "heads": v[3], "params": model.num_parameters(),
             "batch": args["batch"], "sample_batch": args["sample_batch"], "rounds": args["repeats"]}
        for kind, times in raw[v[0]].items():
            r[kind] = statistics.median(times)
            r[kind[:-2] + "_ratio"] = statistics.median(t / b for t, b in zip(times, base[kind]))
        r["paper_train_ratio"] = PAPER_TRAIN_DAYS[v[1]] / PAPER_TRAIN_DAYS["none"]
        r["paper_test_ratio"] = PAPER_TEST_S[v[1]] / PAPER_TEST_S["none"]
        rows.append(r)
    return rows


def measure_memory(args: dict) -> float:
    """Peak memory (MB) of two training steps of ``args["variant"]``: CUDA's max allocated, or the peak
    RSS of the process on the CPU (run it in its own process: :func:`run_isolated`)."""
    device = setup_device(args)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _, fns = build_variant(args, args["variant"], device)
    fns["train_step_s"]()
    fns["train_step_s"]()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb()


def run_isolated(fn, args: dict, isolate: bool):
    """``fn(args)``, in a fresh spawned process if ``isolate``."""
    if not isolate:
        return fn(args)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (args,))
