"""The constant-then-linear-decay schedule (Full-Glow's) is opt-in and leaves older configs unchanged."""
import pytest

from attnflow_core.core import TrainingConfigError
from attnflow_core.training import TrainConfig


def test_constant_then_linear_to_zero():
    cfg = TrainConfig(steps=100, lr=1e-4, warmup_steps=0, decay_start=0.5)
    lrs = [cfg.lr_at(s) for s in range(100)]
    assert lrs[:51] == [1e-4] * 51  # constant for the first half (the decay starts from 1 at step 50)
    assert lrs[75] == pytest.approx(0.5e-4) and lrs[99] == pytest.approx(0.02e-4)
    assert all(a > b for a, b in zip(lrs[50:], lrs[51:]))  # strictly decreasing afterwards
    assert TrainConfig(steps=10, decay_start=0.0, warmup_steps=0).lr_at(0) == pytest.approx(8e-4)


def test_off_by_default_and_identity_unchanged():
    old = TrainConfig(steps=10)
    assert "decay_start" not in old.identity()  # checkpoints written before the field existed still resume
    assert [old.lr_at(s) for s in range(10)] == [TrainConfig(steps=10, decay_start=None).lr_at(s) for s in range(10)]
    assert TrainConfig(steps=10, decay_start=0.5).identity()["decay_start"] == 0.5
    with pytest.raises(TrainingConfigError, match="decay_start"):
        TrainConfig(decay_start=1.0).validate()
