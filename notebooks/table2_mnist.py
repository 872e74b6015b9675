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
# # Table 2: MNIST bits/dim of Glow, mARFlow and AttnFlow (iMap, iTrans)
#
# Rows at the paper's (L, K, C) settings (scaled down in the smoke profile), in both data
# conventions: `padded` (3×32×32, the backbone's, which the paper's numbers use) and
# `standard` (1×28×28). Bits/dim of the two conventions are **not** comparable.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None

# %%
from attnflow_core.repro import collect, results_dir, write_table

df = collect("table2_mnist", profile, results_root=results_root, data_root=data_root)
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
