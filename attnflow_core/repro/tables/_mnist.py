"""Shared by Table 2 and the three ablations: the MNIST profiles, the cell specs and the row layout.

Profiles. *smoke*: digits (no download), a scaled-down mARFlow (L=2, mixture-logistic couplings with
one block, a 2-layer ConvLSTM prior of width 16), a few hundred steps on a laptop CPU. *paper*: full
MNIST in the backbone's 3×32×32 convention, the paper's (L, K, C), the mARFlow coupling net (10 blocks,
32 components, dropout 0.2), batch 32, lr 8e-4, 100k steps.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ...core.errors import FlowError
from ...data.batches import TensorBatches
from ...data.registry import dataset_shape, load_dataset
from ...models.multiscale import FlowConfig, max_squeezes
from ...training.config import TrainConfig
from ..evaluators import Reconstruction, SampleGrid, TestBitsPerDim
from ..spec import CellData, TableSpec

PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "digits", "convention": "standard", "limit_train": None, "limit_test": None,
        "model": dict(components=8, blocks=1, dropout=0.0, prior_hidden=16, prior_layers=2),
        "scale": lambda L, K, C: (2, 2 if K >= 4 else 1, 32 if C >= 96 else 16),
        "train": dict(steps=200, batch_size=32, lr=5e-3, warmup_steps=20, checkpoint_every=100, log_every=10),
    },
    # real MNIST (train minus a 5,000-image validation split; the 10,000 test images) in the cheaper
    # 1×28×28 convention, every mARFlow setting scaled to one small model (L2 K2 C32, 8 mixture components,
    # 1 coupling block, a 2-layer ConvLSTM prior of width 16) and Glow to L2 K8 C64; checkpoints chosen on
    # validation bits/dim of an EMA of the weights, loss spikes restored (training/stability.py)
    "cpu": {
        "dataset": "mnist", "convention": "standard", "limit_train": None, "limit_test": None, "val_size": 5000,
        "model": dict(components=8, blocks=1, dropout=0.0, prior_hidden=16, prior_layers=2),
        "scale": lambda L, K, C: (2, 8, 64) if C >= 512 else (2, 2, 32),
        "train": dict(steps=3000, batch_size=32, lr=1e-3, warmup_steps=200, checkpoint_every=250, log_every=25,
                      eval_every=500, ema_decay=0.999, spike_factor=1.5),
    },
    "paper": {
        "dataset": "mnist", "convention": "padded", "limit_train": None, "limit_test": None,
        "model": dict(components=32, blocks=10, dropout=0.2, prior_hidden=32, prior_layers=3),
        "scale": lambda L, K, C: (L, K, C),
        "train": dict(steps=100_000, batch_size=32, lr=8e-4, warmup_steps=2_000, checkpoint_every=1_000,
                      log_every=100),
    },
}
SMOKE_NOTE = ("**Smoke numbers are not the paper's numbers**: tiny models, a few hundred steps, "
              "8×8 digits. They show that the pipeline runs end to end.")


def cell_spec(profile: str, backbone: str, coupling: str, attention: str, L: int, K: int, C: int,
              convention: str | None = None, **attn: Any) -> dict[str, Any]:
    """One cell at the paper's ``(L, K, C)``, scaled by the profile (and to what the images allow)."""
    s = PROFILE_SETTINGS[profile]
    sl, sk, sc = s["scale"](L, K, C)
    conv = convention or s["convention"]
    shape = dataset_shape(s["dataset"], conv)
    max_levels = max_squeezes(*shape[1:])
    note = ""
    if sl > max_levels:  # e.g. 1×28×28 MNIST squeezes only twice (28 → 14 → 7)
        note = f"levels reduced from {sl} to {max_levels}: a {shape[1]}×{shape[2]} image squeezes only {max_levels} times"
        sl = max_levels
    model = FlowConfig(backbone=backbone, coupling=coupling, attention=attention, levels=sl, steps=sk, hidden=sc,
                       image_shape=shape, **s["model"], **attn)
    if attention == "itrans" and "patches" not in attn and model.patches != "auto":
        try:
            model.patch_grids()
        except FlowError:  # e.g. 1×28×28 at 2 levels: the paper's 2×2 grid does not divide the last 7×7 map
            model.patches = "auto"
            note = "; ".join(filter(None, [note, f"iTrans patches='auto': grids {model.patch_grids()} by level"]))
    spec = {"dataset": s["dataset"], "convention": conv, "paper_setting": [L, K, C], "note": note,
            "model": model.to_dict(), "train": asdict(TrainConfig(**s["train"]))}
    if s.get("val_size"):
        spec["data"] = {"val_size": s["val_size"]}
    return spec


class MnistTable(TableSpec):
    """Tables whose cells are unconditional multi-scale flows on digits / MNIST, scored by bits/dim."""

    smoke_note = SMOKE_NOTE
    profiles = ("smoke", "cpu", "paper")

    def readable_name(self, spec: dict[str, Any]) -> str:
        m = spec["model"]
        return (f"{m['backbone']}-{m['coupling']}-{m['attention']}-p{m['position']}-h{m['heads']}-{m['mask']}"
                f"-L{m['levels']}K{m['steps']}C{m['hidden']}-{spec['dataset']}-{spec['convention']}")

    def load_data(self, spec: dict[str, Any], profile: str, data_root: str | None) -> CellData:
        s = PROFILE_SETTINGS[profile]
        val_size = spec.get("data", {}).get("val_size", 0)
        tr = load_dataset(spec["dataset"], "train", root=data_root, convention=spec["convention"],
                          limit=s["limit_train"], val_size=val_size)
        te = load_dataset(spec["dataset"], "test", root=data_root, convention=spec["convention"],
                          limit=s["limit_test"])
        va = load_dataset(spec["dataset"], "val", root=data_root, convention=spec["convention"],
                          val_size=val_size).images if val_size else None
        return CellData(train=TensorBatches(tr.images), test=te.images, n_train=len(tr), val=va)

    def evaluators(self, spec: dict[str, Any]) -> list:
        return [TestBitsPerDim(), Reconstruction(), SampleGrid()]

    def row(self, spec: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
        nan = float("nan")
        return {
            "seed": spec["train"]["seed"], "val_bpd": rec.get("val_bpd"), "best_step": rec.get("best_step"),
            "weights": rec.get("weights", "last"), "n_spikes": rec.get("n_spikes", 0),
            "diverged": rec.get("diverged", ""), **self._row(spec, {"test_bpd": nan, "test_bpd_sem": nan,
                                                                   "reconstruction_max_abs_err": nan,
                                                                   "samples": "", **rec})}

    def _row(self, spec: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
        m = spec["model"]
        return {
            "label": spec["label"], "method": spec.get("method", m["attention"]),
            "attention": m["attention"], "position": m["position"], "heads": m["heads"], "mask": m["mask"],
            "levels": m["levels"], "steps": m["steps"], "hidden": m["hidden"],
            "paper_setting": "L{}K{}C{}".format(*spec["paper_setting"]),
            "params_M": round(rec["params_M"], 4), "paper_params_M": spec.get("paper_params_M"),
            "bpd": round(rec["test_bpd"], 4), "bpd_sem": round(rec["test_bpd_sem"], 4),
            "paper_bpd": spec.get("paper_bpd"),
            "profile": rec["profile"], "dataset": spec["dataset"], "convention": spec["convention"],
            "image_shape": "×".join(map(str, m["image_shape"])), "train_steps": rec["steps"],
            "train_seconds": round(rec["train_seconds"], 1), "hardware": rec.get("hardware", ""),
            "recon_err": rec["reconstruction_max_abs_err"], "commit": rec["commit"], "code_hash": rec["code_hash"],
            "samples": rec["samples"], "key": rec["key"], "note": spec.get("note", ""),
        }
