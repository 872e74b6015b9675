"""The resumable, deterministic trainer: ``fit(model, batches, config, run_dir, objective=..., hooks=...)``.

Determinism: the batch of step ``s`` comes from the batch source (a function of ``(seed, s)``, see
:mod:`attnflow_core.data.batches`), and the global RNG (dequantisation noise, dropout, probes) is
re-seeded from ``(seed, s)`` at every step. A run that is killed and resumed from its last checkpoint
therefore ends bit-for-bit where an uninterrupted run with the same seed ends (on the same device
and library versions).

Hooks run after every optimiser step as ``hook(step, model, optimizer)`` (residual flows refresh their
spectral norms there). Checkpoints are written atomically every ``checkpoint_every`` steps and at the
end; a checkpoint written for another configuration (``identity``) is refused, a corrupt one raises a
:class:`~attnflow_core.core.errors.CheckpointError` that names the file.

Under ``torchrun`` (a process group initialised, e.g. by
:func:`~attnflow_core.training.distributed.init_from_env`), ``fit`` trains data-parallel: each rank reads
its shard of every global batch, DistributedDataParallel averages the gradients, and only rank 0 writes
checkpoints (see :mod:`attnflow_core.training.distributed`). One process trains exactly as before.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..core.errors import CheckpointError, DataError, NonFiniteError
from ..data.batches import Batch, BatchSource, TensorBatches, step_seed
from ..models.registry import build_model, config_to_dict, make_config
from . import distributed as ddp
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, pick_device
from .objectives import BitsPerDim
from .stability import EMA, SpikeGuard, snapshot, swapped

Hook = Callable[[int, nn.Module, torch.optim.Optimizer], None]


@dataclass
class TrainResult:
    model: nn.Module  # the selected weights: the best validated ones if validated, else the EMA's (finished) or the last
    steps_done: int
    history: list[dict[str, float]]
    train_seconds: float
    resumed_from: int
    stopped_by: str  # "steps" or "time_budget"
    device: str
    val_curve: list[dict[str, float]] = field(default_factory=list)  # {"step", "val_bpd"} per validation
    best_step: int | None = None  # the step of the returned weights when validated
    best_val: float | None = None
    spike_events: list[dict[str, Any]] = field(default_factory=list)
    weights: str = "last"  # "last", "ema" (the average), "best" or "best-ema" (validated average)


def _to(batch: Batch, device: torch.device) -> Batch:
    return tuple(t.to(device) for t in batch) if isinstance(batch, tuple) else batch.to(device)  # type: ignore


def fit(model: nn.Module, batches: BatchSource, config: TrainConfig, run_dir: str | Path, *,
        objective: Callable[[nn.Module, Batch], Tensor] | None = None, identity: Mapping[str, Any] | None = None,
        hooks: Iterable[Hook] = (), progress: bool = True,
        on_step: Callable[[int, float], None] | None = None,
        validate: Callable[[nn.Module], float] | None = None) -> TrainResult:
    """Train ``model`` (built and seeded by the caller) on ``batches``, checkpointing into ``run_dir``.

    ``objective(model, batch)`` returns the scalar loss (default: mean bits/dim). If
    ``run_dir/checkpoint.pt`` exists with the same ``identity``, training resumes from it.
    ``on_step(step, loss)`` is called after every step (tests use it to interrupt a run).

    ``validate(model) -> float`` (lower is better: validation bits/dim) is called every
    ``config.eval_every`` steps and at the end, on the EMA weights if ``config.ema_decay`` is set; the
    returned model then holds the best validated weights (kept in ``run_dir/best.pt``). With
    ``config.spike_factor`` a spike restores the last good snapshot and lowers the learning rate
    (:mod:`~attnflow_core.training.stability`); the events are in :attr:`TrainResult.spike_events`.
    """
    from tqdm.auto import tqdm

    config.validate()
    objective = objective or BitsPerDim()
    hooks = list(hooks)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, best_path = run_dir / "checkpoint.pt", run_dir / "best.pt"
    device = pick_device(config.device)
    model = model.to(device)
    opt = config.make_optimizer(model.parameters())
    identity = dict(identity) if identity is not None else {"train": config.identity()}
    ema = EMA(config.ema_decay) if config.ema_decay is not None else None
    guard = SpikeGuard(config.spike_factor) if config.spike_factor is not None else None
    validating = validate is not None and config.eval_every is not None
    step, history, elapsed, resumed_from = 0, [], 0.0, 0
    # what a restore and a resume must bring back besides the weights
    state: dict[str, Any] = {"lr_scale": 1.0, "spikes": [], "val_curve": [], "best": None}
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, device, required=("identity", "model", "optimizer", "step"))
        if ck["identity"] != identity:
            raise CheckpointError(f"{ckpt_path} belongs to a different configuration; use another run_dir "
                                  f"or delete it.\n saved: {ck['identity']}\n now:   {identity}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, history, elapsed = ck["step"], ck["history"], ck["elapsed"]
        state.update(ck.get("protocol", {}))
        if ema is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        if guard is not None and ck.get("guard") is not None:
            guard.load_state_dict(ck["guard"])
        resumed_from = step

    last_ckpt = step

    rank, world = ddp.world()

    def save() -> None:
        nonlocal last_ckpt
        last_ckpt = step
        if rank == 0:  # the others hold the same state; a checkpoint knows no world size
            save_checkpoint(ckpt_path, {"identity": identity, "model": model.state_dict(),
                                        "optimizer": opt.state_dict(), "step": step, "history": history,
                                        "elapsed": elapsed, "protocol": state,
                                        "ema": ema.state_dict() if ema is not None else None,
                                        "guard": guard.state_dict() if guard is not None else None})

    def take_snapshot() -> dict[str, Any]:
        return snapshot(model, opt, {"step": step, "history": history, "state": state,
                                     "ema": ema.state_dict() if ema is not None else None,
                                     "guard": guard.state_dict() if guard is not None else None})

    def run_validation() -> None:
        with swapped(model, ema.state if ema is not None else None) as m:
            m.eval()
            with torch.no_grad():
                v = float(validate(m))
            m.train()
            state["val_curve"].append({"step": step, "val_bpd": v})
            if state["best"] is None or v < state["best"]["val"]:
                state["best"] = {"val": v, "step": step}
                if rank == 0:
                    save_checkpoint(best_path, {"identity": identity, "step": step, "val": v,
                                                "model": m.state_dict()})

    model.train()
    name = getattr(objective, "name", "loss")
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="train", unit="step", dynamic_ncols=True)
    stopped_by = "steps"
    t0 = time.perf_counter()
    start_elapsed = elapsed
    running = None
    loss_of = objective
    if world > 1:
        torch.manual_seed(step_seed(config.seed, step))  # ActNorm from the global batch, as one process would
        unused = ddp.prepare(model, objective, _to(batches.batch(step, config.batch_size, config.seed), device))
        wrapped = ddp.wrap(model, objective, device, unused)

        def loss_of(_model: nn.Module, b: Batch) -> Tensor:
            return wrapped(b)
    good = take_snapshot() if guard is not None else None
    try:
        agreed_stop = False  # world > 1: the ranks decide to stop together (see ddp.agree)
        while step < config.steps:
            if agreed_stop or (world == 1 and config.time_budget_s is not None and elapsed >= config.time_budget_s):
                stopped_by = "time_budget"
                break
            if world == 1:
                torch.manual_seed(step_seed(config.seed, step))
                batch = _to(batches.batch(step, config.batch_size, config.seed), device)
            else:
                torch.manual_seed(ddp.rank_seed(config.seed, step, rank))
                batch = _to(ddp.shard_batch(batches, step, config.batch_size, config.seed, rank, world), device)
            for g in opt.param_groups:
                g["lr"] = config.lr_at(step) * state["lr_scale"]
            loss = loss_of(model, batch)
            loss_value = float(loss.detach())  # the one host sync per step, shared by guard and bar
            if world > 1:  # every rank sees the global loss and the same stop decision
                want_stop = config.time_budget_s is not None and elapsed >= config.time_budget_s
                loss_value, agreed_stop = ddp.agree(loss_value, want_stop, device)
            if guard is not None:
                spike, median = guard.is_spike(loss_value)
                if spike:
                    event = {"step": step + 1, "loss": loss_value, "median": median, "restored_to": good["step"],
                             "lr_scale": state["lr_scale"] * config.spike_lr_factor}
                    if len(state["spikes"]) >= config.max_spikes:
                        raise NonFiniteError(
                            f"loss spike {len(state['spikes']) + 1} (loss {loss_value:.4g}, recent median "
                            f"{median:.4g}) in training step {step + 1}, more than max_spikes={config.max_spikes}: "
                            f"the run diverged; events: {state['spikes']}")
                    spikes = [*state["spikes"], event]
                    model.load_state_dict(good["model"])
                    opt.load_state_dict(good["optimizer"])
                    step, history = good["step"], copy.deepcopy(good["history"])
                    state.clear()
                    state.update(copy.deepcopy(good["state"]))
                    state["spikes"], state["lr_scale"] = spikes, event["lr_scale"]
                    if ema is not None:
                        ema.load_state_dict(copy.deepcopy(good["ema"]))
                    guard.load_state_dict(good["guard"])
                    bar.n = step
                    good = take_snapshot()
                    continue
            elif not math.isfinite(loss_value):
                raise NonFiniteError(
                    f"non-finite loss ({loss_value}) in training step {step + 1}; the last good checkpoint "
                    f"({ckpt_path}, after {last_ckpt} steps) is intact. "
                    f"Lower the learning rate or the warm-up, or check the data.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            step += 1
            for hook in hooks:
                hook(step, model, opt)
            if ema is not None:
                ema.update(model)
            elapsed = start_elapsed + (time.perf_counter() - t0)
            running = loss_value if running is None else 0.95 * running + 0.05 * loss_value
            if step % config.log_every == 0 or step == config.steps:
                history.append({"step": step, f"train_{name}": loss_value, "lr": opt.param_groups[0]["lr"],
                                "seconds": elapsed})
            bar.update(1)
            bar.set_postfix({name: f"{running:.3f}"})
            if validating and (step % config.eval_every == 0 or step == config.steps):
                run_validation()
            if step % config.checkpoint_every == 0:
                save()
            if guard is not None and (step % config.snapshot_every == 0 or step % config.checkpoint_every == 0
                                      or (validating and step % config.eval_every == 0)):
                good = take_snapshot()
            if on_step is not None:
                on_step(step, loss_value)
    finally:
        bar.close()
    save()
    ddp.barrier()  # the final checkpoint is on disk before any rank returns
    weights = "last"
    best = state["best"]
    if validating and best is not None:
        model.load_state_dict(load_checkpoint(best_path, device, required=("model",))["model"])
        weights = "best-ema" if ema is not None else "best"
    elif ema is not None and ema.state is not None and stopped_by == "steps":
        model.load_state_dict(ema.state)
        weights = "ema"
    model.eval()
    return TrainResult(model, step, history, elapsed, resumed_from, stopped_by, str(device),
                       val_curve=list(state["val_curve"]), best_step=best["step"] if best else None,
                       best_val=best["val"] if best else None, spike_events=list(state["spikes"]), weights=weights)


def train(model_config: Any, train_config: TrainConfig, images: Tensor, run_dir: str | Path,
          progress: bool = True, on_step: Callable[[int, float], None] | None = None,
          cond: Tensor | None = None) -> TrainResult:
    """Build the model of ``model_config`` (seeded with ``train_config.seed``) and :func:`fit` it on
    uint8 ``images`` (N, C, H, W) held in memory (with ``cond[i]`` paired to ``images[i]`` if given)."""
    train_config.validate()
    cfg = make_config(model_config)
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(f"train expects uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if tuple(images.shape[1:]) != tuple(cfg.image_shape):
        raise DataError(f"images have shape {tuple(images.shape[1:])}, model config says {tuple(cfg.image_shape)}")
    torch.manual_seed(train_config.seed)
    model = build_model(cfg)
    identity = {"model": config_to_dict(cfg), "train": train_config.identity()}
    return fit(model, TensorBatches(images, cond), train_config, run_dir, identity=identity, progress=progress,
               on_step=on_step, hooks=model.training_hooks(train_config.steps))
