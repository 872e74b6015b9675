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
# # One cell of a grid: train and evaluate one configuration
#
# The driver (`python -m attnflow_core.repro`) trains cells in worker processes; this notebook
# (re)computes one cell by hand (`rerun`), resuming its checkpoint unless `force`. `grid` overrides the table
# notebook's grid (a non-default grid writes into its own results root, as the table notebook does):
#
# `papermill notebooks/run_cell.ipynb out.ipynb -p table ablation_heads -p cell 1 -p rerun True -y "grid: {heads: [2, 4]}"`

# %% tags=["parameters"]
table = "ablation_masks"
cell = "0"
profile = "smoke"
results_root = None
data_root = None
force = False  # True: train from scratch
rerun = False  # True: recompute even if a current record exists (resuming the checkpoint)
threads = 0
grid = {}

# %%
import json
import torch
from attnflow_core.repro import get_table, results_dir, run_cell, table_run
from attnflow_core.repro.params import check_names, namespace_parameters

check_names("run_cell", namespace_parameters(globals()))  # an undeclared parameter (a typo) is an error
if threads:
    torch.set_num_threads(int(threads))
run = table_run(table, {"profile": profile, "results_root": results_root, "data_root": data_root, **grid})
spec = get_table(table).find_cell(profile, cell, **run.grid)
print(spec["label"], "->", run.results_root)
print(json.dumps(spec.get("model", {}), indent=1))  # measured cells (real data) have no model

# %%
record = run_cell(spec, profile, results_root=run.results_root, data_root=run.data_root, force=force, rerun=rerun)
{k: v for k, v in record.items() if k not in ("spec", "history")}

# %%
from IPython.display import Image, display
if "samples" in record:
    display(Image(filename=str(results_dir(profile, run.results_root) / record["samples"])))
