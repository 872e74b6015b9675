"""The reproduction's tables and ablation grids, their profiles, and the runner of one grid cell.

A *cell* is one trained-and-evaluated model. Its result is a JSON file under
``results/<profile>/cells/``, keyed by the cell's full configuration and by a hash of the
``attnflow_core`` source, so a rerun reuses a cell only if neither changed. Tables and
figures are built from cells, so a grid can be (re)run one cell at a time.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .backbones import FlowConfig, max_squeezes
from .data import dataset_shape, load_dataset
from .io import write_json, write_text
from .report import save_sample_grid
from .train import TrainConfig, evaluate_bpd, git_commit, hardware_label, reconstruction_error, train

PROFILES = ("smoke", "paper")
REPO_ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------- profiles
# smoke: digits (no download), a scaled-down mARFlow (L=2, mixture-logistic couplings with one
# block, a 2-layer ConvLSTM prior of width 16), a few hundred steps on a laptop CPU.
# paper: full MNIST in the backbone's 3×32×32 convention, the paper's (L, K, C), the mARFlow
# coupling net (10 blocks, 32 components, dropout 0.2), batch 32, lr 8e-4, 100k steps.
PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "digits", "convention": "standard", "limit_train": None, "limit_test": None,
        "model": dict(components=8, blocks=1, dropout=0.0, prior_hidden=16, prior_layers=2),
        "scale": lambda L, K, C: (2, 2 if K >= 4 else 1, 32 if C >= 96 else 16),
        "train": dict(steps=200, batch_size=32, lr=5e-3, warmup_steps=20, checkpoint_every=100, log_every=10),
    },
    "paper": {
        "dataset": "mnist", "convention": "padded", "limit_train": None, "limit_test": None,
        "model": dict(components=32, blocks=10, dropout=0.2, prior_hidden=32, prior_layers=3),
        "scale": lambda L, K, C: (L, K, C),
        "train": dict(steps=100_000, batch_size=32, lr=8e-4, warmup_steps=2_000, checkpoint_every=1_000, log_every=100),
    },
}

# ----------------------------------------------------------------------------- Table 2
# (method, backbone, coupling, attention, L, K, C, paper params (M), paper bits/dim)
# The paper's Table 2 mixes conventions: Glow's 1.05 is quoted from the Glow paper (1×28×28,
# "standard"), the mARFlow/AttnFlow numbers come from the mARFlow code (3×32×32, "padded").
PAPER_CONVENTION = {"Glow": "standard"}
TABLE2_ROWS = [
    ("Glow", "glow", "affine", "none", 3, 32, 512, None, 1.05),
    ("mARFlow", "marflow", "mixlogistic", "none", 3, 4, 96, 46.01, 0.56),
    ("AttnFlow-iMap", "marflow", "mixlogistic", "imap", 3, 4, 96, 46.03, 0.43),
    ("AttnFlow-iTrans", "marflow", "mixlogistic", "itrans", 3, 4, 96, 46.25, 0.44),
    ("AttnFlow-iMap", "marflow", "mixlogistic", "imap", 3, 2, 96, 23.78, 0.41),
    ("AttnFlow-iTrans", "marflow", "mixlogistic", "itrans", 3, 2, 96, 23.89, 0.42),
    ("AttnFlow-iMap", "marflow", "mixlogistic", "imap", 3, 2, 48, 8.94, 0.39),
    ("AttnFlow-iTrans", "marflow", "mixlogistic", "itrans", 3, 2, 48, 9.05, 0.40),
]
# smoke runs the first setting of each method only
SMOKE_TABLE2_ROWS = [0, 1, 2, 3]

# ----------------------------------------------------------------------------- ablations
# Paper: MNIST bits/dim of AttnFlow-iMap by mask (main text, §5); positions and heads are
# only plotted (Fig. 5, supp. Fig. 8-9), so no numbers can be quoted for them.
PAPER_MASK_BPD = {"spatial": 0.99, "channel": 0.75, "random": 0.50, "checkerboard": 0.39}
ABLATION_BASE = dict(backbone="marflow", coupling="mixlogistic", L=3, K=2, C=48)  # Table 2's best row

ABLATIONS = {
    "ablation_positions": [dict(attention=a, position=p) for a in ("imap", "itrans") for p in (1, 2, 3, 4)],
    "ablation_heads": [dict(attention="itrans", position=4, heads=h) for h in (1, 3, 5, 7)],
    "ablation_masks": [dict(attention="imap", position=4, mask=m) for m in ("spatial", "channel", "random", "checkerboard")],
}
TABLES = ("table2_mnist",) + tuple(ABLATIONS)


# the modules whose code decides a cell's numbers (not the driver, plots or I/O helpers)
NUMERIC_MODULES = ("base", "masks", "layers", "imap", "itrans", "attention", "coupling", "priors", "backbones",
                   "data", "train", "experiments")


def code_hash() -> str:
    """Hash of the modules that make the numbers: a cell is reused only if they are unchanged."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for p in (here / f"{m}.py" for m in NUMERIC_MODULES):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def default_results_root() -> Path:
    """``$ATTNFLOW_RESULTS``, else the checkout's ``results/`` (editable install), else ``./results``."""
    env = os.environ.get("ATTNFLOW_RESULTS")
    if env:
        return Path(env)
    if (REPO_ROOT / "notebooks").is_dir():
        return REPO_ROOT / "results"
    return Path.cwd() / "results"


def results_dir(profile: str, results_root: str | os.PathLike | None = None) -> Path:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    root = Path(results_root) if results_root is not None else default_results_root()
    return root / profile


def _cell_spec(profile: str, backbone: str, coupling: str, attention: str, L: int, K: int, C: int,
               convention: str | None = None, **attn: Any) -> dict[str, Any]:
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
    return {"dataset": s["dataset"], "convention": conv, "paper_setting": [L, K, C], "note": note,
            "model": model.to_dict(), "train": asdict(TrainConfig(**s["train"]))}


def cell_key(spec: dict[str, Any]) -> str:
    m = spec["model"]
    readable = (f"{m['backbone']}-{m['coupling']}-{m['attention']}-p{m['position']}-h{m['heads']}-{m['mask']}"
                f"-L{m['levels']}K{m['steps']}C{m['hidden']}-{spec['dataset']}-{spec['convention']}")
    ident = {k: spec[k] for k in ("dataset", "convention", "model", "train")}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def table_cells(table: str, profile: str) -> list[dict[str, Any]]:
    """The cells (specs) that make up ``table`` under ``profile``, each with a ``label``."""
    cells = []
    if table == "table2_mnist":
        rows = SMOKE_TABLE2_ROWS if profile == "smoke" else range(len(TABLE2_ROWS))
        for conv in ("padded", "standard"):
            for i in rows:
                method, bb, cp, att, L, K, C, p_params, p_bpd = TABLE2_ROWS[i]
                spec = _cell_spec(profile, bb, cp, att, L, K, C, convention=conv)
                same = PAPER_CONVENTION.get(method, "padded") == conv
                spec.update(label=f"{method} L{L} K{K} C{C} [{conv}]", method=method,
                            paper_params_M=p_params if same else None, paper_bpd=p_bpd if same else None)
                cells.append(spec)
    elif table in ABLATIONS:
        b = ABLATION_BASE
        for attn in ABLATIONS[table]:
            spec = _cell_spec(profile, b["backbone"], b["coupling"], attn["attention"], b["L"], b["K"], b["C"],
                              **{k: v for k, v in attn.items() if k != "attention"})
            spec["label"] = "-".join(f"{k}={v}" for k, v in attn.items())
            spec["grid"] = attn
            if table == "ablation_masks":
                spec["paper_bpd"] = PAPER_MASK_BPD[attn["mask"]]
            cells.append(spec)
    else:
        raise ValueError(f"unknown table {table!r}; choose one of {TABLES}")
    return cells


def find_cell(table: str, profile: str, label_or_index: str | int) -> dict[str, Any]:
    cells = table_cells(table, profile)
    if isinstance(label_or_index, int) or str(label_or_index).isdigit():
        return cells[int(label_or_index)]
    for c in cells:
        if c["label"] == label_or_index or cell_key(c) == label_or_index:
            return c
    raise ValueError(f"no cell {label_or_index!r} in {table}; cells: {[c['label'] for c in cells]}")


def load_cell(spec: dict[str, Any], profile: str, results_root: str | os.PathLike | None = None) -> dict | None:
    path = results_dir(profile, results_root) / "cells" / f"{cell_key(spec)}.json"
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    return rec if rec.get("code_hash") == code_hash() else None


def run_cell(spec: dict[str, Any], profile: str, results_root: str | os.PathLike | None = None,
             data_root: str | os.PathLike | None = None, force: bool = False, progress: bool = True,
             temperatures: tuple[float, ...] = (0.5, 0.7, 1.0)) -> dict[str, Any]:
    """Train and evaluate one cell (resuming its checkpoint), write its JSON and sample grid."""
    if not force:
        done = load_cell(spec, profile, results_root)
        if done is not None:
            return done
    out = results_dir(profile, results_root)
    key = cell_key(spec)
    s = PROFILE_SETTINGS[profile]
    tr = load_dataset(spec["dataset"], "train", root=data_root, convention=spec["convention"], limit=s["limit_train"])
    te = load_dataset(spec["dataset"], "test", root=data_root, convention=spec["convention"], limit=s["limit_test"])
    tcfg = TrainConfig(**spec["train"])
    # checkpoints are tied to the code that wrote them: a code change never resumes an old run
    chash = code_hash()
    run_dir = out.parent.parent / "runs" / profile / f"{key}-{chash}"
    if force and (run_dir / "checkpoint.pt").exists():
        (run_dir / "checkpoint.pt").unlink()
    result = train(spec["model"], tcfg, tr.images, run_dir, progress=progress)
    t0 = time.perf_counter()
    ev = evaluate_bpd(result.model, te.images)
    eval_s = time.perf_counter() - t0
    rec_err = reconstruction_error(result.model, te.images)
    n_params = result.model.num_parameters()
    samples_rel = f"samples/{key}.png"
    save_sample_grid(result.model, out / samples_rel, temperatures, spec.get("label", key))
    record = {
        "key": key, "label": spec.get("label", key), "profile": profile, "spec": spec,
        "dataset": spec["dataset"], "convention": spec["convention"], "image_shape": spec["model"]["image_shape"],
        "n_train": len(tr), "n_test": ev["n"], "steps": result.steps_done, "stopped_by": result.stopped_by,
        "test_bpd": ev["bpd"], "test_bpd_sem": ev["bpd_sem"], "final_train_bpd": result.history[-1]["train_bpd"]
        if result.history else math.nan, "params": n_params, "params_M": n_params / 1e6,
        "train_seconds": result.train_seconds,
        "eval_seconds": eval_s, "reconstruction_max_abs_err": rec_err, "hardware": hardware_label(result.device),
        "torch": torch.__version__, "code_hash": chash, "commit": git_commit(),
        "history": result.history, "samples": samples_rel, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(out / "cells" / f"{key}.json", record)
    return record


def collect(table: str, profile: str, results_root: str | os.PathLike | None = None, run_missing: bool = True,
            data_root: str | os.PathLike | None = None, progress: bool = True):
    """A DataFrame with one row per cell of ``table`` (running missing cells if asked)."""
    import pandas as pd

    rows = []
    for spec in table_cells(table, profile):
        rec = load_cell(spec, profile, results_root)
        if rec is None:
            if not run_missing:
                raise FileNotFoundError(f"cell {spec['label']!r} of {table} ({profile}) has no result yet")
            rec = run_cell(spec, profile, results_root, data_root=data_root, progress=progress)
        m = spec["model"]
        rows.append({
            "label": spec["label"], "method": spec.get("method", m["attention"]),
            "attention": m["attention"], "position": m["position"], "heads": m["heads"], "mask": m["mask"],
            "levels": m["levels"], "steps": m["steps"], "hidden": m["hidden"],
            "paper_setting": "L{}K{}C{}".format(*spec["paper_setting"]),
            "params_M": round(rec["params_M"], 4), "paper_params_M": spec.get("paper_params_M"),
            "bpd": round(rec["test_bpd"], 4), "bpd_sem": round(rec["test_bpd_sem"], 4),
            "paper_bpd": spec.get("paper_bpd"),
            "profile": profile, "dataset": rec["dataset"], "convention": rec["convention"],
            "image_shape": "×".join(map(str, rec["image_shape"])), "train_steps": rec["steps"],
            "train_seconds": round(rec["train_seconds"], 1), "hardware": rec["hardware"],
            "recon_err": rec["reconstruction_max_abs_err"], "commit": rec["commit"], "code_hash": rec["code_hash"],
            "samples": rec["samples"], "key": rec["key"], "note": spec.get("note", ""),
        })
    return pd.DataFrame(rows)


def write_table(df, table: str, profile: str, results_root: str | os.PathLike | None = None,
                columns: list[str] | None = None, note: str = "") -> tuple[Path, Path]:
    """Write ``<table>.csv`` and ``<table>.md`` (with provenance) atomically."""
    out = results_dir(profile, results_root)
    csv_path, md_path = out / f"{table}.csv", out / f"{table}.md"
    write_text(csv_path, df.to_csv(index=False))
    view = df[columns] if columns else df
    hw = sorted(set(df["hardware"]))
    header = (f"# {table} ({profile} profile)\n\n"
              f"Profile **{profile}**; data set {', '.join(sorted(set(df['dataset'])))}; "
              f"training steps {', '.join(map(str, sorted(set(df['train_steps']))))}; hardware {', '.join(hw)}; "
              f"code hash {', '.join(sorted(set(df['code_hash'])))}.\n"
              f"Columns `paper_*` are the paper's numbers, shown beside ours, never in place of them.\n")
    if profile == "smoke":
        header += ("\n**Smoke numbers are not the paper's numbers**: tiny models, a few hundred steps, "
                   "8×8 digits. They show that the pipeline runs end to end.\n")
    write_text(md_path, header + ("\n" + note + "\n" if note else "") + "\n" + view.to_markdown(index=False) + "\n")
    return csv_path, md_path
