"""The protocol of an honest run: validation-selected weights, the EMA, loss spikes restored and counted,
and a resumed run that ends where an uninterrupted one ends with all three on."""
import pytest
import torch

from attnflow_core import NonFiniteError
from attnflow_core.core import TrainingConfigError
from attnflow_core.data import TensorBatches
from attnflow_core.metrics.likelihood import evaluate_bpd
from attnflow_core.models.registry import build_model, make_config
from attnflow_core.training import TrainConfig, fit, load_checkpoint
from attnflow_core.training.stability import EMA, SpikeGuard

TINY = dict(backbone="glow", image_shape=(1, 8, 8), levels=2, steps=1, hidden=8, attention="imap")


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(make_config(TINY))


def _cfg(device, **kw):
    # the guard needs window // 5 = 20 losses before it judges one: spikes are put after step 20
    base = dict(device=str(device), steps=30, batch_size=16, checkpoint_every=8, warmup_steps=2, lr=5e-3,
                eval_every=8, ema_decay=0.9, spike_factor=1.5, snapshot_every=2, seed=3)
    return TrainConfig(**{**base, **kw})


def test_the_returned_weights_are_the_best_validated_ones(tmp_path, digits, device):
    tr, te = digits
    val = te.images[:64]
    result = fit(_model(), TensorBatches(tr.images), _cfg(device), tmp_path, progress=False,
                 validate=lambda m: evaluate_bpd(m, val)["bpd"])
    curve = {c["step"]: c["val_bpd"] for c in result.val_curve}
    assert sorted(curve) == [8, 16, 24, 30]
    assert result.best_step == min(curve, key=curve.get) and result.best_val == min(curve.values())
    assert result.weights == "best-ema"
    # the model holds what best.pt holds, and it scores the selected validation value again
    best = load_checkpoint(tmp_path / "best.pt")
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, best["model"][k].to(v.device)), k
    assert evaluate_bpd(result.model, val)["bpd"] == pytest.approx(result.best_val, abs=1e-12)


def test_ema_is_an_average_not_the_last_weights(tmp_path, digits, device):
    tr, _ = digits
    last = fit(_model(), TensorBatches(tr.images), _cfg(device, eval_every=None, ema_decay=None, spike_factor=None),
               tmp_path / "a", progress=False)
    avg = fit(_model(), TensorBatches(tr.images), _cfg(device, eval_every=None, spike_factor=None),
              tmp_path / "b", progress=False)
    assert last.weights == "last" and avg.weights == "ema"
    diffs = [float((a - b).abs().max()) for (n, a), b in zip(last.model.state_dict().items(),
                                                             avg.model.state_dict().values())
             if a.is_floating_point()]
    assert max(diffs) > 1e-4  # the same run, but the average differs from its last iterate


def test_ema_update_formula():
    m = torch.nn.Linear(2, 1)
    ema = EMA(0.5)
    ema.update(m)  # the first update copies
    w0 = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)  # d_2 = min(0.5, 3/12) = 0.25
    assert torch.allclose(ema.state["weight"], 0.25 * w0 + 0.75 * (w0 + 1.0))


def test_spike_guard_median_rule():
    g = SpikeGuard(1.5, window=10)
    assert not g.is_spike(100.0)[0]  # too few losses known to judge one
    g = SpikeGuard(1.5, window=10)
    for v in [2.0, 2.1, 1.9]:
        assert not g.is_spike(v)[0]
    spike, med = g.is_spike(3.5)
    assert spike and med == 2.0
    assert g.is_spike(float("nan"))[0]
    assert not g.is_spike(2.9)[0]  # below 1.5 × 2.0


class _SpikeOnce:
    """An objective that reports one huge loss at a given step (once), like a bad batch would."""

    def __init__(self, at: int, times: int = 1):
        self.calls, self.at, self.left = 0, at, times
        self.name = "bpd"

    def __call__(self, model, batch):
        self.calls += 1
        loss = model.bits_per_dim(batch).mean()
        if self.calls == self.at and self.left > 0:
            self.left -= 1
            self.at += 3
            return loss * 100.0
        return loss


def test_a_spike_restores_the_last_snapshot_and_lowers_the_lr(tmp_path, digits, device):
    tr, te = digits
    cfg = _cfg(device, eval_every=None)
    result = fit(_model(), TensorBatches(tr.images), cfg, tmp_path, progress=False, objective=_SpikeOnce(25))
    assert result.steps_done == cfg.steps
    (ev,) = result.spike_events
    assert ev["step"] == 25 and ev["restored_to"] == 24 and ev["lr_scale"] == 0.5 and ev["loss"] > 20
    lrs = {h["step"]: h["lr"] for h in fit(_model(), TensorBatches(tr.images), _cfg(device, eval_every=None,
               log_every=1), tmp_path / "b", progress=False, objective=_SpikeOnce(25)).history}
    assert lrs[24] == pytest.approx(cfg.lr_at(23)) and lrs[26] == pytest.approx(0.5 * cfg.lr_at(25))


def test_too_many_spikes_is_a_divergence(tmp_path, digits, device):
    tr, _ = digits
    with pytest.raises(NonFiniteError, match="max_spikes=1"):
        fit(_model(), TensorBatches(tr.images), _cfg(device, eval_every=None, max_spikes=1), tmp_path,
            progress=False, objective=_SpikeOnce(22, times=5))


def test_without_the_guard_a_nonfinite_loss_still_stops_the_run(tmp_path, digits, device):
    tr, _ = digits

    def nan_loss(model, batch):
        return model.bits_per_dim(batch).mean() * float("nan")

    with pytest.raises(NonFiniteError, match="non-finite loss"):
        fit(_model(), TensorBatches(tr.images), _cfg(device, spike_factor=None, eval_every=None), tmp_path,
            progress=False, objective=nan_loss)


def test_resume_with_validation_ema_and_a_spike_ends_where_an_uninterrupted_run_ends(tmp_path, digits, device):
    tr, te = digits
    val = te.images[:32]

    def run(d, spike_at, on_step=None):
        return fit(_model(), TensorBatches(tr.images), _cfg(device), d, progress=False, on_step=on_step,
                   objective=_SpikeOnce(spike_at), validate=lambda m: evaluate_bpd(m, val)["bpd"])

    full = run(tmp_path / "a", 25)

    class Killed(Exception):
        pass

    def kill(step, loss):
        if step == 27:
            raise Killed

    with pytest.raises(Killed):
        run(tmp_path / "b", 25, kill)
    resumed = run(tmp_path / "b", 1)  # resumed at step 24: its first loss is step 25's, the bad one
    assert resumed.resumed_from == 24 and len(full.spike_events) == 1
    assert resumed.val_curve == full.val_curve and resumed.spike_events == full.spike_events
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


@pytest.mark.parametrize("bad", [dict(eval_every=0), dict(ema_decay=1.0), dict(spike_factor=1.0),
                                 dict(spike_lr_factor=1.5)])
def test_bad_protocol_settings_are_refused(bad):
    with pytest.raises(TrainingConfigError):
        TrainConfig(**{"spike_factor": 2.0, **bad}).validate()


def test_protocol_fields_off_keep_the_old_identity():
    ident = TrainConfig().identity()
    assert not {"eval_every", "ema_decay", "spike_factor", "spike_lr_factor", "max_spikes"} & set(ident)
    assert {"eval_every", "ema_decay", "spike_factor", "max_spikes"} <= set(
        TrainConfig(eval_every=5, ema_decay=0.9, spike_factor=2.0).identity())
