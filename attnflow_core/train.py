"""One trainer for every notebook: resumable, deterministic, guarded against non-finite losses.

Determinism: the batch of step ``s`` comes from the permutation of epoch ``s // batches_per_epoch``
(seeded by ``(seed, epoch)``), and the global RNG (dequantisation noise, dropout) is re-seeded
from ``(seed, s)`` at every step. A run that is killed and resumed from its last checkpoint
therefore ends bit-for-bit where an uninterrupted run with the same seed ends (on the same
device and library versions).
"""
from __future__ import annotations

import math
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .backbones import FlowConfig, FlowModel
from .base import NonFiniteError
from .io import save_torch


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 8e-4
    optimizer: str = "adamax"  # the mARFlow code's; the AttnFlow supplement says Adam
    warmup_steps: int = 200
    grad_clip: float = 50.0  # max global gradient norm; 0 disables
    checkpoint_every: int = 250
    seed: int = 0
    time_budget_s: float | None = None
    device: str = "auto"
    log_every: int = 25

    def validate(self) -> None:
        if self.optimizer not in ("adamax", "adam"):
            raise ValueError(f"optimizer must be 'adamax' or 'adam', got {self.optimizer!r}")
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0 or self.checkpoint_every < 1:
            raise ValueError(f"invalid training config {self}")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hardware_label(device: torch.device | str | None = None) -> str:
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + 17) % (2**63 - 1)


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Indices of the batch of ``step``: epochs of seeded permutations, last partial batch dropped."""
    per_epoch = max(n // batch_size, 1)
    epoch, j = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_step_seed(seed, -1 - epoch)))
    bs = min(batch_size, n)
    return perm[j * bs:(j + 1) * bs]


def warmup_factor(step: int, warmup: int) -> float:
    """Linear learning-rate warm-up over ``warmup`` optimiser steps (steps, not samples)."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


@dataclass
class TrainResult:
    model: FlowModel
    steps_done: int
    history: list[dict[str, float]]
    train_seconds: float
    resumed_from: int
    stopped_by: str  # "steps" or "time_budget"
    device: str


def train(model_config: FlowConfig | dict, train_config: TrainConfig, images: Tensor,
          run_dir: str | Path, progress: bool = True,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train a :class:`FlowModel` on uint8 ``images`` (N, C, H, W), checkpointing into ``run_dir``.

    If ``run_dir/checkpoint.pt`` exists (same configs), training resumes from it.
    ``on_step(step, loss)`` is called after every step (tests use it to interrupt a run).
    """
    from tqdm.auto import tqdm

    train_config.validate()
    mcfg = model_config if isinstance(model_config, FlowConfig) else FlowConfig.from_dict(model_config)
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"train expects uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if tuple(images.shape[1:]) != tuple(mcfg.image_shape):
        raise ValueError(f"images have shape {tuple(images.shape[1:])}, model config says {tuple(mcfg.image_shape)}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    device = pick_device(train_config.device)

    torch.manual_seed(train_config.seed)
    model = FlowModel(mcfg).to(device)
    opt_cls = torch.optim.Adamax if train_config.optimizer == "adamax" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=train_config.lr)
    step, history, elapsed, resumed_from = 0, [], 0.0, 0
    identity = {"model": mcfg.to_dict(), "train": {k: v for k, v in asdict(train_config).items()
                                                    if k not in ("steps", "time_budget_s", "device", "log_every",
                                                                 "checkpoint_every")}}
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["identity"] != identity:
            raise ValueError(f"{ckpt_path} belongs to a different configuration; use another run_dir "
                             f"or delete it.\n saved: {ck['identity']}\n now:   {identity}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, history, elapsed = ck["step"], ck["history"], ck["elapsed"]
        resumed_from = step

    last_ckpt = step

    def save() -> None:
        nonlocal last_ckpt
        last_ckpt = step
        save_torch(ckpt_path, {"identity": identity, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "step": step, "history": history, "elapsed": elapsed})

    model.train()
    n = images.shape[0]
    bar = tqdm(total=train_config.steps, initial=step, disable=not progress, desc="train", unit="step",
               dynamic_ncols=True)
    stopped_by = "steps"
    t0 = time.perf_counter()
    start_elapsed = elapsed
    running = None
    try:
        while step < train_config.steps:
            if train_config.time_budget_s is not None and elapsed >= train_config.time_budget_s:
                stopped_by = "time_budget"
                break
            torch.manual_seed(_step_seed(train_config.seed, step))
            x = images[batch_indices(n, train_config.batch_size, step, train_config.seed)].to(device)
            for g in opt.param_groups:
                g["lr"] = train_config.lr * warmup_factor(step, train_config.warmup_steps)
            loss = model.bits_per_dim(x).mean()
            loss_value = float(loss.detach())  # the one host sync per step, shared by guard and bar
            if not math.isfinite(loss_value):
                raise NonFiniteError(
                    f"non-finite loss ({loss_value}) in training step {step + 1}; the last good checkpoint "
                    f"({ckpt_path}, after {last_ckpt} steps) is intact. "
                    f"Lower the learning rate or the warm-up, or check the data.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if train_config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
            opt.step()
            step += 1
            elapsed = start_elapsed + (time.perf_counter() - t0)
            running = loss_value if running is None else 0.95 * running + 0.05 * loss_value
            if step % train_config.log_every == 0 or step == train_config.steps:
                history.append({"step": step, "train_bpd": loss_value, "lr": opt.param_groups[0]["lr"],
                                "seconds": elapsed})
            bar.update(1)
            bar.set_postfix(bpd=f"{running:.3f}")
            if step % train_config.checkpoint_every == 0:
                save()
            if on_step is not None:
                on_step(step, loss_value)
    finally:
        bar.close()
    save()
    model.eval()
    return TrainResult(model, step, history, elapsed, resumed_from, stopped_by, str(device))


@torch.no_grad()
def evaluate_bpd(model: FlowModel, images: Tensor, batch_size: int = 256, seed: int = 0,
                 progress: bool = False) -> dict[str, float]:
    """Test bits/dim over the whole split (last partial batch included), seeded dequantisation."""
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    vals = []
    try:
        for i in tqdm(range(0, images.shape[0], batch_size), disable=not progress, desc="eval"):
            vals.append(model.bits_per_dim(images[i:i + batch_size].to(device)).double().cpu())
    finally:
        torch.set_rng_state(gen_state)
    v = torch.cat(vals)
    if not torch.isfinite(v).all():
        raise NonFiniteError(f"{int((~torch.isfinite(v)).sum())} test images got a non-finite bits/dim")
    return {"bpd": float(v.mean()), "bpd_sem": float(v.std() / math.sqrt(len(v))), "n": int(len(v))}


@torch.no_grad()
def reconstruction_error(model: FlowModel, images: Tensor, n: int = 64) -> float:
    """max |decode(encode(x)) − x| in model space over ``n`` dequantised test images."""
    device = next(model.parameters()).device
    x = model.dequantize(images[:n].to(device), noise=False)
    zs, _, _ = model.encode(x)
    return float((model.decode(zs) - x).abs().max())
