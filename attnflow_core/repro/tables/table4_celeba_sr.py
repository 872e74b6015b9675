"""Table 4: 8× face super-resolution on CelebA -- SRFlow vs cAttnFlow-iMap / -iTrans at L1 K1 and L2 K8.

Rows: bicubic (from every cell's record: the same test set), SRFlow, cAttnFlow-iMap, cAttnFlow-iTrans, at
the paper's (L, K). Metrics: SSIM, PSNR, LR-PSNR, LPIPS of SR samples averaged over temperatures
0.1 … 0.9 (the paper's protocol, :mod:`attnflow_core.metrics.super_resolution`), test conditional
bits/dim, parameters.

Profiles. *paper*: CelebA from the user's copy (``img_align_celeba`` + partition file, crop "align178",
or ready 160×160 HR crops), HR 160 / LR 20, the paper-size models, SRFlow's schedule (Adam 5e-4,
β = (0.9, 0.99), batch 16, 200k steps, lr halved at 50/75/90/95 %, seed 10; the AttnFlow supplement
reports 500k steps for cAttnFlow), 5,000 test images. *smoke*: the stand-in of
:func:`~attnflow_core.data.superres.sr_standin` (photographs bundled with scikit-image and scikit-learn,
64×64 HR / 8×8 LR), a scaled-down RRDB and flow, a few dozen steps: it shows that the pipeline runs, not
how the methods compare.
"""
from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.io import write_bytes
from ...data.batches import DatasetBatches, TensorBatches
from ...data.celeba import CelebASR
from ...data.superres import STANDIN_NOTE, RandomHFlip, sr_standin
from ...metrics.likelihood import evaluate_bpd, reconstruction_error
from ...metrics.restoration import LPIPS
from ...metrics.super_resolution import PAPER_TEMPERATURES, evaluate_bicubic, evaluate_sr
from ...models.registry import build_model, config_to_dict
from ...models.srflow import SRFlowConfig
from ...training.config import TrainConfig
from ..spec import CellContext, CellData, TableSpec, register_table

# method, attention, L, K, paper: params (M), SSIM, PSNR, LR-PSNR, LPIPS
ROWS = [
    ("SRFlow", "none", 1, 1, 6.622, 0.67, 25.57, 44.20, 0.23),
    ("SRFlow", "none", 2, 8, 13.25, 0.73, 25.47, 38.94, 0.17),
    ("cAttnFlow-iMap", "imap", 1, 1, 6.623, 0.71, 25.50, 44.75, 0.19),
    ("cAttnFlow-iTrans", "itrans", 1, 1, 6.630, 0.73, 25.50, 44.23, 0.18),
    ("cAttnFlow-iMap", "imap", 2, 8, 13.30, 0.74, 25.38, 41.88, 0.17),
    ("cAttnFlow-iTrans", "itrans", 2, 8, 13.93, 0.73, 25.24, 42.49, 0.16),
]
PAPER_BICUBIC = {"ssim": 0.63, "psnr": 23.15, "lr_psnr": 35.19, "lpips": 0.58}
EXAMPLE_TEMPERATURES = (0.1, 0.5, 0.9)  # the LR | samples | HR figure
UNUSED_REFERENCE_CONV = 276_576  # the reference counts a 3×3 conv (320→96) it never calls

PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "sr_standin", "data": {"hr_size": 64, "n_train": 1024, "n_test": None},
        "model": dict(image_shape=(3, 64, 64), nf=8, nb=2, gc=8, hidden=16),
        "scale": lambda L, K: (L, 1 if K == 1 else 2),
        "train": dict(steps=50, batch_size=8, lr=2e-3, optimizer="adam", betas=(0.9, 0.99), warmup_steps=10,
                      checkpoint_every=50, log_every=10),
        "eval_batch": 32,
    },
    "paper": {
        "dataset": "celeba", "data": {"hr_size": 160, "crop": "align178", "n_test": 5000, "test_split": "test"},
        "model": dict(image_shape=(3, 160, 160), nf=64, nb=8, gc=32, hidden=64),
        "scale": lambda L, K: (L, K),
        "train": dict(steps=200_000, batch_size=16, lr=5e-4, optimizer="adam", betas=(0.9, 0.99), warmup_steps=0,
                      milestones=(0.5, 0.75, 0.9, 0.95), gamma=0.5, checkpoint_every=1_000, log_every=100, seed=10),
        "eval_batch": 16,
    },
}
SMOKE_NOTE = ("**Smoke numbers are not the paper's numbers** and not CelebA: " + STANDIN_NOTE + "; a scaled-down "
              "RRDB (nf 8, nb 2, gc 8) and flow (hidden 16, K 8 → 2), a few dozen training steps on 2 CPU cores. "
              "They show that the pipeline runs end to end, not how the methods compare.")


def paper_model_config(attention: str, L: int, K: int) -> SRFlowConfig:
    """The paper-size model of a row (CelebA 160×160, RRDB nf 64 / nb 8 / gc 32, hidden 64)."""
    return SRFlowConfig(levels=L, steps=K, attention=attention, **PROFILE_SETTINGS["paper"]["model"])


def count_parameters_without_weights(config: SRFlowConfig) -> int:
    """Parameters of a model built on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        return build_model(config).num_parameters()


def paper_size_parameters() -> dict[str, int]:
    """Our parameter count of every row's paper-size model, by row label (a few seconds: meta device)."""
    return {f"{method} L{L} K{K}": count_parameters_without_weights(paper_model_config(attention, L, K))
            for method, attention, L, K, *_ in ROWS}


class Table4(TableSpec):
    name = "table4_celeba_sr"
    description = ("Table 4: 8× face SR on CelebA, SRFlow vs cAttnFlow-iMap/iTrans at L1K1 and L2K8 "
                   "(SSIM, PSNR, LR-PSNR, LPIPS over temperatures 0.1–0.9)")
    order = 80
    smoke_note = SMOKE_NOTE

    def build(self, profile: str) -> list[dict[str, Any]]:
        s = PROFILE_SETTINGS[profile]
        cells = []
        for method, attention, L, K, p_params, p_ssim, p_psnr, p_lr, p_lpips in ROWS:
            sl, sk = s["scale"](L, K)
            model = SRFlowConfig(levels=sl, steps=sk, attention=attention, **s["model"])
            cells.append({
                "table": self.name, "label": f"{method} L{L} K{K}", "method": method, "dataset": s["dataset"],
                "data": dict(s["data"]), "paper_setting": [L, K], "model": config_to_dict(model),
                "train": asdict(TrainConfig(**s["train"])),
                "paper": {"params_M": p_params, "ssim": p_ssim, "psnr": p_psnr, "lr_psnr": p_lr, "lpips": p_lpips},
                "evaluators": {"temperatures": list(PAPER_TEMPERATURES), "batch": s["eval_batch"]},
            })
        return cells

    def readable_name(self, spec: dict[str, Any]) -> str:
        L, K = spec["paper_setting"]
        return f"srflow-{spec['model']['attention']}-L{L}K{K}-{spec['dataset']}"

    def load_data(self, spec: dict[str, Any], profile: str, data_root: str | None) -> CellData:
        d = spec["data"]
        if spec["dataset"] == "sr_standin":
            tr = sr_standin("train", d["hr_size"], n_train=d["n_train"])
            te = sr_standin("test", d["hr_size"], n_test=d["n_test"])
            return CellData(train=RandomHFlip(TensorBatches(tr.x, tr.cond)), test=te.x, test_cond=te.cond,
                            n_train=len(tr), extra={"data_note": STANDIN_NOTE})
        train = CelebASR(split="train", hr_size=d["hr_size"], crop=d["crop"], data_root=data_root)
        test = CelebASR(split=d["test_split"], hr_size=d["hr_size"], crop=d["crop"], limit=d["n_test"],
                        data_root=data_root)
        pairs = [test[i] for i in range(len(test))]
        return CellData(train=RandomHFlip(DatasetBatches(train)), test=torch.stack([p[0] for p in pairs]),
                        test_cond=torch.stack([p[1] for p in pairs]), n_train=len(train),
                        extra={"data_note": f"CelebA {d['test_split']} split, crop {train.crop}, root {train.root}"})

    def evaluators(self, spec: dict[str, Any]) -> list:
        return [SuperResolutionEval(tuple(spec["evaluators"]["temperatures"]), spec["evaluators"]["batch"])]

    def row(self, spec: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
        L, K = spec["paper_setting"]
        m, p = spec["model"], spec["paper"]
        lp = rec.get("lpips")
        return {
            "label": spec["label"], "method": spec["method"], "paper_setting": f"L{L}K{K}",
            "levels": m["levels"], "steps": m["steps"], "params_M": round(rec["params_M"], 4),
            "paper_params_M": p["params_M"],
            "ssim": round(rec["ssim"], 4), "psnr": round(rec["psnr"], 3), "lr_psnr": round(rec["lr_psnr"], 3),
            "lpips": "n/a" if lp is None else round(lp, 4),
            "paper_ssim": p["ssim"], "paper_psnr": p["psnr"], "paper_lr_psnr": p["lr_psnr"], "paper_lpips": p["lpips"],
            "bicubic_ssim": rec["bicubic"]["ssim"], "bicubic_psnr": rec["bicubic"]["psnr"],
            "bicubic_lr_psnr": rec["bicubic"]["lr_psnr"], "bicubic_lpips": rec["bicubic"]["lpips"],
            "test_bpd": round(rec["test_bpd"], 4), "recon_err": rec["reconstruction_max_abs_err"],
            "n_test": rec["n_test"], "profile": rec["profile"], "dataset": spec["dataset"],
            "image_shape": "×".join(map(str, m["image_shape"])), "train_steps": rec["steps"],
            "train_seconds": round(rec["train_seconds"], 1), "eval_seconds": round(rec["eval_seconds"], 1),
            "hardware": rec["hardware"], "lpips_note": rec.get("lpips_note", ""), "data_note": rec.get("data_note", ""),
            "sr_examples": rec["sr_examples"], "commit": rec["commit"], "code_hash": rec["code_hash"], "key": rec["key"],
        }


    # -- what the notebook shows -----------------------------------------------------------------
    @staticmethod
    def bicubic(ours) -> dict[str, float | None]:
        """The bicubic baseline's metrics (every cell measures it on the same test images; the first is read)."""
        import pandas as pd

        first = ours.iloc[0]
        return {"psnr": first["bicubic_psnr"], "ssim": first["bicubic_ssim"], "lr_psnr": first["bicubic_lr_psnr"],
                "lpips": None if pd.isna(first["bicubic_lpips"]) else first["bicubic_lpips"]}

    @staticmethod
    def lpips_note(ours) -> str:
        return next((n for n in ours["lpips_note"] if n), "")

    def assemble(self, ours):
        """The bicubic row, then ours, with our count of each row's paper-size model beside it."""
        import pandas as pd

        df = ours.copy()
        df["paper_size_params"] = df["label"].map(paper_size_parameters())  # the architecture check, at paper size
        first, bic = df.iloc[0], self.bicubic(df)
        bicubic = {"label": "Bicubic", "method": "Bicubic", "ssim": round(bic["ssim"], 4),
                   "psnr": round(bic["psnr"], 3), "lr_psnr": round(bic["lr_psnr"], 3),
                   "lpips": "n/a" if bic["lpips"] is None else round(bic["lpips"], 4),
                   **{f"paper_{k}": v for k, v in PAPER_BICUBIC.items()}, "paper_setting": "–",
                   "n_test": first["n_test"], "image_shape": first["image_shape"], "dataset": first["dataset"],
                   "profile": first["profile"], "hardware": first["hardware"]}
        table = pd.concat([pd.DataFrame([bicubic]), df], ignore_index=True)
        for c in ("levels", "steps", "paper_size_params", "n_test"):
            table[c] = table[c].astype("Int64")  # integers, with an empty cell in the bicubic row
        return table

    def note(self, ours) -> str:
        first, lpips_note = ours.iloc[0], self.lpips_note(ours)
        return (f"Metrics: mean over temperatures 0.1–0.9 of per-image means ({int(first['n_test'])} test images); "
                f"`levels/steps` are the trained model, `paper_setting` the paper's row, `paper_size_params` our "
                f"count of the paper-size model (CelebA 160×160): the reference code counts {UNUSED_REFERENCE_CONV:,} "
                f"more parameters in every row (an unused 3×3 conv). Data: {first['data_note']}."
                + (f"\n\n{lpips_note}" if lpips_note else ""))

    def columns(self) -> list[str]:
        return ["label", "paper_setting", "levels", "steps", "params_M", "paper_size_params", "paper_params_M",
                "ssim", "paper_ssim", "psnr", "paper_psnr", "lr_psnr", "paper_lr_psnr", "lpips", "paper_lpips",
                "test_bpd", "n_test", "image_shape", "dataset", "train_steps", "train_seconds", "hardware", "profile"]


class SuperResolutionEval:
    """Table 4's evaluator: the temperature sweep, the bicubic baseline, test bits/dim, the reconstruction
    error and an ``sr_examples/<key>.npz`` of LR / HR / bicubic / SR."""

    name = "super_resolution"

    def __init__(self, temperatures: tuple[float, ...] = PAPER_TEMPERATURES, batch_size: int = 16, keep: int = 4):
        self.temperatures, self.batch_size, self.keep = temperatures, batch_size, keep

    def __call__(self, model: nn.Module, data: CellData, ctx: CellContext) -> dict[str, Any]:
        import time

        t0 = time.perf_counter()
        hr, lr = data.test, data.test_cond
        lpips = LPIPS(device=next(model.parameters()).device)
        temps = tuple(sorted(set(self.temperatures) | set(EXAMPLE_TEMPERATURES)))
        ev = evaluate_sr(model, hr, lr, temps, self.batch_size, lpips=lpips, keep=self.keep)
        rows = [r for r in ev["by_temperature"] if r["temperature"] in self.temperatures]
        avg = {k: (None if any(r[k] is None for r in rows) else sum(r[k] for r in rows) / len(rows))
               for k in ("psnr", "ssim", "lr_psnr", "lpips")}
        bpd = evaluate_bpd(model, hr, batch_size=self.batch_size, cond=lr)
        rel = f"sr_examples/{ctx.key}.npz"
        buf = io.BytesIO()
        np.savez_compressed(buf, lr=lr[: self.keep].numpy(), hr=hr[: self.keep].numpy(),
                            temperatures=np.array(EXAMPLE_TEMPERATURES),
                            sr=np.stack([ev["examples"][t].numpy() for t in EXAMPLE_TEMPERATURES]))
        write_bytes(ctx.out_dir / rel, buf.getvalue())
        return {
            **avg, "sr_by_temperature": ev["by_temperature"], "n_test": ev["n"],
            "bicubic": evaluate_bicubic(hr, lr, lpips, self.batch_size),
            "lpips_note": "" if lpips.available else f"LPIPS n/a: {lpips.reason}",
            "test_bpd": bpd["bpd"], "test_bpd_sem": bpd["bpd_sem"],
            "reconstruction_max_abs_err": reconstruction_error(model, hr, min(16, hr.shape[0]), cond=lr),
            "data_note": data.extra.get("data_note", ""), "sr_examples": rel, "eval_seconds": time.perf_counter() - t0,
        }


SPEC = register_table(Table4())
