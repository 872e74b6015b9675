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
# # Supplementary Table 1: the cost of iMap and iTrans relative to the mARFlow backbone
#
# Training-step time and per-image test time (likelihood evaluation and sampling) of the Table 3
# models, as ratios to mARFlow, beside the paper's ratios (2.5 / 3 / 5 GPU-days; 0.48 / 0.50 /
# 0.61 s per image on a TITAN RTX). The timing is one cached cell: it runs once per code version and
# machine profile, and this notebook reuses its record.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("supp_table1_timings", globals())
results_root, data_root = run.results_root, run.data_root

# %%
from attnflow_core.repro import get_table, write_table

spec = get_table("supp_table1_timings")
df = run.collect()
write_table(df, spec, profile, results_root, columns=spec.columns(), note=spec.note(df))
df[spec.columns()]
