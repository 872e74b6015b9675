# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ablation: the mask of AttnFlow-iMap (§5)
# Paper (MNIST): spatial 0.99, channel 0.75, random 0.50, spatial-channel checkerboard 0.39 bits/dim.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None

# %%
from attnflow_core.repro import collect, results_dir, write_table
from attnflow_core.repro.plots import plot_ablation

df = collect("ablation_masks", profile, results_root=results_root, data_root=data_root)
cols = ["mask", "bpd", "bpd_sem", "paper_bpd", "params_M", "levels", "steps", "hidden", "dataset", "train_steps",
        "train_seconds", "hardware", "profile"]
write_table(df, "ablation_masks", profile, results_root, columns=cols)
plot_ablation(df, "mask", f"iMap mask ({profile}, {df['dataset'].iloc[0]})", paper_col="paper_bpd",
              path=results_dir(profile, results_root) / "ablation_masks.png")
df[cols]
