"""Data-parallel training (gloo on CPU): 2 processes with B/2 each reach 1 process's parameters with B; a
killed 2-process run resumes (on 2 processes or on 1) to the same result; 1 process trains as before."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from attnflow_core.data import TensorBatches, load_dataset
from attnflow_core.models.registry import build_model, make_config
from attnflow_core.training import TrainConfig, fit, train
from attnflow_core.training.distributed import shard_batch

TINY = dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1, hidden=8, attention="imap")
FIXTURE = Path(__file__).parents[1] / "fixtures" / "training" / "base_trainer_glow_tiny.pt"
CFG = dict(steps=5, batch_size=16, checkpoint_every=2, warmup_steps=2, seed=5)


class Exact:
    """Mean bits/dim without dequantisation noise: a deterministic loss, so ranks' random streams do not
    matter and the comparison is of the data-parallel arithmetic alone."""

    name = "bpd"

    def __call__(self, model, batch):
        return model.bits_per_dim(batch, noise=False).mean()


def _run(images, run_dir, kill_at=None):
    """Train the float64 tiny Glow for CFG on ``images`` into ``run_dir`` (resuming its checkpoint)."""
    torch.manual_seed(CFG["seed"])
    model = build_model(make_config(TINY)).double()

    class Killed(Exception):
        pass

    def on_step(step, loss):
        if step == kill_at:
            raise Killed

    try:
        return fit(model, TensorBatches(images), TrainConfig(**CFG, device="cpu"), run_dir, objective=Exact(),
                   progress=False, on_step=on_step)
    except Killed:
        return None


def _worker(rank: int, world: int, init_file: str, root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    images = torch.load(Path(root) / "images.pt")
    try:
        full = _run(images, Path(root) / "full")
        _run(images, Path(root) / "killed", kill_at=3)  # every rank stops at step 3 (checkpoint at step 2)
        resumed = _run(images, Path(root) / "killed")
        _run(images, Path(root) / "killed_once", kill_at=3)  # resumed by one process in the test
        if rank == 0:
            torch.save({"full": full.model.state_dict(), "resumed": resumed.model.state_dict(),
                        "resumed_from": resumed.resumed_from, "history": full.history}, Path(root) / "out.pt")
    finally:
        dist.destroy_process_group()


def _same(a, b, tol):
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst <= tol, worst


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="this torch build has no torch.distributed with the gloo backend")
def test_two_processes_with_half_batches_equal_one_process_and_resume(tmp_path):
    images = load_dataset("digits", "train").images[:64]
    torch.save(images, tmp_path / "images.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, __file__, str(r), "2", str(tmp_path / "init"), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    outs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)[-3000:]
    two = torch.load(tmp_path / "out.pt")
    one = _run(images, tmp_path / "one")
    assert one.steps_done == 5 and two["resumed_from"] == 2
    _same(one.model.state_dict(), two["full"], 1e-6)
    _same(two["full"], two["resumed"], 0.0)  # kill and resume on 2 processes: bit for bit
    assert [h["train_bpd"] for h in two["history"]] == pytest.approx([h["train_bpd"] for h in one.history], abs=1e-9)
    once = _run(images, tmp_path / "killed_once")  # the 2-process checkpoint resumed on 1 process
    assert once.resumed_from == 2
    _same(one.model.state_dict(), once.model.state_dict(), 1e-6)


def test_shards_of_a_global_batch_are_its_contiguous_parts():
    src = TensorBatches(torch.arange(40).view(40, 1))
    whole = src.batch(3, 8, 1)
    parts = [shard_batch(src, 3, 8, 1, r, 4) for r in range(4)]
    assert torch.equal(torch.cat(parts), whole)
    from attnflow_core.core.errors import DataError
    with pytest.raises(DataError, match="does not split over 3 processes"):
        shard_batch(src, 3, 8, 1, 0, 3)


def test_one_process_trains_bit_for_bit_as_the_base_trainer(tmp_path, digits):
    """Parameters after 6 steps equal those the trainer of 491ee88 produced (saved in the fixture)."""
    ref = torch.load(FIXTURE)
    cfg = TrainConfig(steps=6, batch_size=16, checkpoint_every=3, warmup_steps=2, seed=3)
    got = train(TINY, cfg, digits[0].images, tmp_path, progress=False).model.state_dict()
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k


if __name__ == "__main__":  # one rank of the 2-process test
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
