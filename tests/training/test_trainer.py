"""The trainer: bit-exact resume, refused checkpoints, non-finite guard, hooks, paired batches."""
import pytest
import torch

from attnflow_core import FlowModel, NonFiniteError
from attnflow_core.core import CheckpointError, DataError
from attnflow_core.data import TensorBatches
from attnflow_core.training import TrainConfig, fit, load_checkpoint, train

TINY = dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1, hidden=8, attention="imap")


def test_interrupted_run_resumes_to_the_same_result(tmp_path, digits, device):
    tr, _ = digits
    cfg = TrainConfig(device=str(device), steps=8, batch_size=16, checkpoint_every=3, warmup_steps=2, seed=7)
    full = train(TINY, cfg, tr.images, tmp_path / "a", progress=False)

    class Killed(Exception):
        pass

    def kill_at_5(step, loss):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train(TINY, cfg, tr.images, tmp_path / "b", progress=False, on_step=kill_at_5)
    resumed = train(TINY, cfg, tr.images, tmp_path / "b", progress=False)
    assert resumed.resumed_from == 3  # the last checkpoint before the kill
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_bpd"] for h in full.history] == [h["train_bpd"] for h in resumed.history]


def test_checkpoint_of_another_config_is_refused(tmp_path, digits, device):
    tr, _ = digits
    train(TINY, TrainConfig(device=str(device), steps=1, batch_size=8), tr.images, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="different configuration"):
        train({**TINY, "hidden": 4}, TrainConfig(device=str(device), steps=1, batch_size=8), tr.images, tmp_path, progress=False)


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, digits, monkeypatch, device):
    tr, _ = digits
    orig = FlowModel.bits_per_dim
    calls = {"n": 0}

    def poisoned(self, x, cond=None, noise=True):
        calls["n"] += 1
        out = orig(self, x, cond, noise)
        return out * float("nan") if calls["n"] > 4 else out

    monkeypatch.setattr(FlowModel, "bits_per_dim", poisoned)
    with pytest.raises(NonFiniteError, match=r"training step 5.*after 4 steps\) is intact"):
        train(TINY, TrainConfig(device=str(device), steps=10, batch_size=8, checkpoint_every=2), tr.images, tmp_path, progress=False)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 4


def test_train_rejects_wrong_images(digits, tmp_path, device):
    tr, _ = digits
    with pytest.raises(DataError, match="uint8"):
        train(TINY, TrainConfig(device=str(device), steps=1), tr.images.float(), tmp_path, progress=False)
    with pytest.raises(DataError, match="model config says"):
        train({**TINY, "image_shape": (3, 8, 8)}, TrainConfig(device=str(device), steps=1), tr.images, tmp_path, progress=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_names_the_file_and_what_to_do(tmp_path, digits, damage, device):
    tr, _ = digits
    cfg = TrainConfig(device=str(device), steps=2, batch_size=8)
    train(TINY, cfg, tr.images, tmp_path, progress=False)
    ck = tmp_path / "checkpoint.pt"
    data = ck.read_bytes()
    ck.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=r"checkpoint.pt.*(truncated or corrupt|not an attnflow).*Delete"):
        train(TINY, TrainConfig(device=str(device), steps=4, batch_size=8), tr.images, tmp_path, progress=False)


def test_hooks_run_after_every_step_and_may_change_the_model(tmp_path, digits, device):
    tr, _ = digits
    calls = []

    def hook(step, model, opt):
        calls.append(step)
        with torch.no_grad():
            model.priors[-1].mean.zero_()  # e.g. a projection after the optimiser step

    torch.manual_seed(0)
    model = FlowModel(TINY)
    res = fit(model, TensorBatches(tr.images), TrainConfig(device=str(device), steps=3, batch_size=8), tmp_path, hooks=[hook],
              progress=False)
    assert calls == [1, 2, 3] and res.model.priors[-1].mean.abs().max() == 0


def test_paired_batches_train_a_conditional_model(tmp_path, digits, device):
    tr, _ = digits
    cond = (tr.images.float() / 255.0).repeat(1, 2, 1, 1)  # a 2-channel condition paired by index
    res = train({**TINY, "cond_channels": 2}, TrainConfig(device=str(device), steps=3, batch_size=8), tr.images, tmp_path,
                progress=False, cond=cond)
    assert res.steps_done == 3 and len(load_checkpoint(tmp_path / "checkpoint.pt")["history"]) >= 1


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, milestones=(0.5, 0.9), gamma=0.5)
    assert cfg.lr_at(0) == pytest.approx(0.1) and cfg.lr_at(9) == 1.0 and cfg.lr_at(49) == 1.0
    assert cfg.lr_at(50) == 0.5 and cfg.lr_at(95) == 0.25
    with pytest.raises(ValueError, match="milestones"):
        TrainConfig(milestones=(1.5,)).validate()


def test_a_training_step_reads_the_device_once(tmp_path, digits, device):
    """The trainer's own loss read is the step's only host sync: the loss of uint8 batches checks no values."""
    from attnflow_core.core.checks import count_host_reads
    from attnflow_core.models.registry import build_model, make_config

    tr, _ = digits
    torch.manual_seed(0)
    model = build_model(make_config(TINY))
    seen = []
    with count_host_reads() as reads:
        fit(model, TensorBatches(tr.images), TrainConfig(device=str(device), steps=4, batch_size=8, checkpoint_every=100), tmp_path,
            progress=False, on_step=lambda step, loss: seen.append([r for r in reads if "attnflow_core" in r]))
    per_step = [b[len(a):] for a, b in zip(seen, seen[1:])]  # after the first step (data-dependent initialisation)
    assert [len(r) for r in per_step] == [1, 1, 1] and "trainer.py" in per_step[0][0], per_step
