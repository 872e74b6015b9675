# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Table 5: conditional bits/dim of label → photo translation (Cityscapes)
#
# Full-Glow (L4 K16) and cAttnFlow-iMap / -iTrans (L2 K8) trained here; C-Glow v.1 / v.2 and Dual-Glow
# are **paper-only** rows (not implemented in this repository: their numbers are the paper's, ours `n/a`).
# Metric: $-(\log p(\tilde x_b \mid \tilde x_a) - D\ln 256)/(D\ln 2)$ on the held-out split, with
# $\tilde x = (x + u)/256 - \tfrac12$, $u \sim U(0,1)$ for photo and label, $D = 3HW$.
# The smoke profile trains on a **stand-in** (crops of scikit-learn's bundled photos with a
# colour-quantised segmentation as the label map), not on Cityscapes.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None
seeds = None  # one cell per seed; None: the profile's (cpu: [0, 1, 2]; smoke, paper: each cell's own)
steps = None  # training steps; None: the profile's

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("table5_cityscapes", globals())
results_root, data_root = run.results_root, run.data_root

# %%
import numpy as np
import pandas as pd
from attnflow_core.repro import get_table, results_dir, write_table
from attnflow_core.repro.tables.table5_cityscapes import plot_translation

spec = get_table("table5_cityscapes")
trained = run.collect()
df = pd.concat([pd.DataFrame(spec.paper_only_rows()), trained.astype(object)], ignore_index=True)
df = df.where(df.notna(), "")  # paper-only rows have no configuration or run of ours
cols = ["label", "paper_setting", "levels", "steps", "hidden", "heads", "params", "params_M", "paper_params_M",
        "cond_bpd", "cond_bpd_sem", "paper_cond_bpd", "n_test", "image_shape", "dataset", "train_steps",
        "train_seconds", "hardware", "profile", "note"]
write_table(df, "table5_cityscapes", profile, results_root, columns=cols,
            note="`cond_bpd`: ours, on the held-out split (one dequantisation draw per pair, seeded); "
                 "`paper_*`: the paper's Table 5, beside ours, never in place of them. Our `levels/steps/hidden` "
                 "are the configuration actually trained (the paper's is `paper_setting`). Rows marked paper-only "
                 "are not implemented here.")
df[cols]

# %%
# label | one sample per trained model | photo, for the first held-out pairs (saved by the cell runs)
out = results_dir(profile, results_root)
arrays = [np.load(out / p) for p in trained["samples_npz"]]
path = plot_translation([(m, a["sample"]) for m, a in zip(trained["method"], arrays)], arrays[0]["label"],
                        arrays[0]["photo"], out / "table5_cityscapes.png",
                        f"Table 5 ({profile}, {trained['dataset'].iloc[0]}): label | samples (T = 1) | photo")
from IPython.display import Image
Image(filename=str(path))
