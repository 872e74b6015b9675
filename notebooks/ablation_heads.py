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
# # Ablation: number of iTrans heads (Fig. 5 right, supp. Fig. 9)
# The paper finds 5 heads best on MNIST and CIFAR-10 (plots only, no numbers in the text).

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None

# %%
from attnflow_core.repro import collect, results_dir, write_table
from attnflow_core.repro.plots import plot_ablation

df = collect("ablation_heads", profile, results_root=results_root, data_root=data_root)
cols = ["heads", "bpd", "bpd_sem", "params_M", "levels", "steps", "hidden", "dataset", "train_steps",
        "train_seconds", "hardware", "profile"]
write_table(df, "ablation_heads", profile, results_root, columns=cols)
plot_ablation(df, "heads", f"iTrans heads ({profile}, {df['dataset'].iloc[0]})",
              path=results_dir(profile, results_root) / "ablation_heads.png")
df[cols]
