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
# # Table 2: MNIST bits/dim of Glow, mARFlow and AttnFlow (iMap, iTrans)
#
# Rows at the paper's (L, K, C) settings (scaled down in the smoke profile), in both data
# conventions: `padded` (3×32×32, the backbone's, which the paper's numbers use) and
# `standard` (1×28×28). Bits/dim of the two conventions are **not** comparable.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None
seeds = None  # one cell per seed; None: the profile's (cpu: [0, 1, 2]; smoke, paper: each cell's own)
steps = None  # training steps; None: the profile's

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("table2_mnist", globals())
results_root, data_root = run.results_root, run.data_root

# %%
from attnflow_core.repro import results_dir, write_table

df = run.collect()
cols = ["label", "paper_setting", "levels", "steps", "hidden", "params_M", "paper_params_M", "bpd", "bpd_sem",
        "paper_bpd", "convention", "image_shape", "dataset", "train_steps", "train_seconds", "hardware", "profile", "note"]
write_table(df, "table2_mnist", profile, results_root, columns=cols,
            note="Paper rows: Glow and mARFlow bits/dim as reported in the paper's Table 2; the paper's "
                 "numbers use the padded 3×32×32 convention. Our `levels/steps/hidden` columns give the "
                 "configuration actually trained (the paper's setting is in `paper_setting`).")
df[cols]

# %%
import seaborn as sns
import matplotlib.pyplot as plt
from attnflow_core.core.io import save_figure

fig, ax = plt.subplots(figsize=(7, 3.5))
sns.barplot(data=df, x="method", y="bpd", hue="convention", ax=ax, palette="crest", errorbar=None)
ax.set_title(f"Table 2 ({profile} profile, {df['dataset'].iloc[0]}): test bits/dim (ours)", fontsize=9)
ax.tick_params(axis="x", labelsize=8)
save_figure(results_dir(profile, results_root) / "table2_mnist.png", fig, dpi=120)
