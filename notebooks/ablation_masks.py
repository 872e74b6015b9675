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
# # Ablation: the mask of AttnFlow-iMap (§5)
# Paper (MNIST): spatial 0.99, channel 0.75, random 0.50, spatial-channel checkerboard 0.39 bits/dim.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None
masks = ["spatial", "channel", "random", "checkerboard"]  # iMap at pos-4
seeds = None  # one cell per seed; None: the profile's (cpu: [0, 1, 2]; smoke, paper: each cell's own)
steps = None  # training steps; None: the profile's

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("ablation_masks", globals())
results_root, data_root = run.results_root, run.data_root

# %%
from attnflow_core.repro import results_dir, write_table
from attnflow_core.repro.plots import plot_ablation

df = run.collect()
cols = ["mask", "bpd", "bpd_sem", "paper_bpd", "params_M", "levels", "steps", "hidden", "dataset", "train_steps",
        "train_seconds", "hardware", "profile"]
write_table(df, "ablation_masks", profile, results_root, columns=cols)
plot_ablation(df, "mask", f"iMap mask ({profile}, {df['dataset'].iloc[0]})", paper_col="paper_bpd",
              path=results_dir(profile, results_root) / "ablation_masks.png")
df[cols]

# %% [markdown]
# ## Evidence over seeds
# The paper's ranking (checkerboard 0.39 < random 0.50 < channel 0.75 < spatial 0.99) as consecutive paired
# claims on test bits/dim at the validation-selected checkpoint (same seed: same initialisation, data order
# and noise). *n/a* with one seed (smoke).

# %%
from attnflow_core.repro.evidence import ranking_claims
from attnflow_core.repro.report import write_evidence

order = ["checkerboard", "random", "channel", "spatial"]
claims = ranking_claims(order, {"spatial": 0.99, "channel": 0.75, "random": 0.50, "checkerboard": 0.39})
claims_df = write_evidence(df, "ablation_masks", profile, results_root, claims=claims, by="mask",
                           records=run.records(), group=lambda rec: rec["spec"]["grid"]["mask"])
claims_df[["claim", "ours: method", "ours: baseline", "paired diff", "n pairs", "verdict", "reason"]]
