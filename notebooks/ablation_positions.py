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
# # Ablation: where to insert the attention (Fig. 5 left, supp. Fig. 8)
# pos-1 before ActNorm, pos-2 after ActNorm, pos-3 after the 1×1 conv, pos-4 after the coupling.
# The paper reports pos-3 and pos-4 as best; it gives these numbers only as plots.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None
attentions = ["imap", "itrans"]
positions = [1, 2, 3, 4]  # pos-1 .. pos-4
seeds = None  # one cell per seed; None: the profile's (cpu: [0, 1, 2]; smoke, paper: each cell's own)
steps = {"cpu": 1500}  # training steps per profile (cpu: half of Table 2's, for the budget); others: the profile's

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("ablation_positions", globals())
results_root, data_root = run.results_root, run.data_root

# %%
from attnflow_core.repro import results_dir, write_table
from attnflow_core.repro.plots import plot_ablation

df = run.collect()
df["pos"] = "pos-" + df["position"].astype(str)
cols = ["attention", "pos", "bpd", "bpd_sem", "params_M", "levels", "steps", "hidden", "dataset", "train_steps",
        "train_seconds", "hardware", "profile"]
write_table(df, "ablation_positions", profile, results_root, columns=cols)
plot_ablation(df, "pos", f"Attention position ({profile}, {df['dataset'].iloc[0]})", hue="attention",
              path=results_dir(profile, results_root) / "ablation_positions.png")
df[cols]

# %% [markdown]
# ## Evidence over seeds
# The paper's claim "pos-3 and pos-4 are better than pos-1 and pos-2" (plots only, no numbers) as four paired
# claims per attention on test bits/dim at the validation-selected checkpoint. *n/a* with one seed (smoke).

# %%
from attnflow_core.repro.evidence import Claim
from attnflow_core.repro.report import write_evidence

df["method"] = df["attention"] + " " + df["pos"]
claims = [Claim(f"{a}: pos-{good} below pos-{bad}", f"{a} pos-{good}", f"{a} pos-{bad}")
          for a in dict.fromkeys(df["attention"]) for good in (3, 4) for bad in (1, 2)
          if {f"{a} pos-{good}", f"{a} pos-{bad}"} <= set(df["method"])]
claims_df = write_evidence(df, "ablation_positions", profile, results_root, claims=claims, records=run.records(),
                           group=lambda rec: f"{rec['spec']['grid']['attention']} pos-{rec['spec']['grid']['position']}")
claims_df[["claim", "ours: method", "ours: baseline", "paired diff", "n pairs", "verdict", "reason"]]
