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
# # Ablation: number of iTrans heads (Fig. 5 right, supp. Fig. 9)
# The paper finds 5 heads best on MNIST and CIFAR-10 (plots only, no numbers in the text).

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None
heads = [1, 3, 5, 7]  # iTrans heads, attention after the coupling (pos-4)
seeds = None  # one cell per seed; None: the profile's (cpu: [0, 1, 2]; smoke, paper: each cell's own)
steps = {"cpu": 1500}  # training steps per profile (cpu: half of Table 2's, for the budget); others: the profile's

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("ablation_heads", globals())
results_root, data_root = run.results_root, run.data_root

# %%
from attnflow_core.repro import results_dir, write_table
from attnflow_core.repro.plots import plot_ablation

df = run.collect()
cols = ["heads", "bpd", "bpd_sem", "params_M", "levels", "steps", "hidden", "dataset", "train_steps",
        "train_seconds", "hardware", "profile"]
write_table(df, "ablation_heads", profile, results_root, columns=cols)
plot_ablation(df, "heads", f"iTrans heads ({profile}, {df['dataset'].iloc[0]})",
              path=results_dir(profile, results_root) / "ablation_heads.png")
df[cols]

# %% [markdown]
# ## Evidence over seeds
# The paper's claim "5 heads are best" (plots only) as paired claims of 5 heads against each other count, on test
# bits/dim at the validation-selected checkpoint. *n/a* with one seed (smoke).

# %%
from attnflow_core.repro.evidence import Claim
from attnflow_core.repro.report import write_evidence

df["method"] = "heads=" + df["heads"].astype(str)
claims = [Claim(f"5 heads below {h}", "heads=5", f"heads={h}") for h in sorted(set(df["heads"])) if h != 5
          and "heads=5" in set(df["method"])]
claims_df = write_evidence(df, "ablation_heads", profile, results_root, claims=claims, records=run.records(),
                           group=lambda rec: f"heads={rec['spec']['grid']['heads']}")
claims_df[["claim", "ours: method", "ours: baseline", "paired diff", "n pairs", "verdict", "reason"]]
