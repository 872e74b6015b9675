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
# # One cell of a grid: train and evaluate one configuration
#
# The driver (`python -m attnflow_core.repro`) runs this notebook once per cell of every
# table and ablation grid (a papermill parameter sweep). Run it alone to (re)compute one cell:
#
# `papermill notebooks/run_cell.ipynb out.ipynb -p table ablation_heads -p cell 2`

# %% tags=["parameters"]
table = "ablation_masks"
cell = "0"
profile = "smoke"
results_root = None
data_root = None
force = False
threads = 0

# %%
import json
import torch
from attnflow_core.repro import get_table, results_dir, run_cell

if threads:
    torch.set_num_threads(int(threads))
spec = get_table(table).find_cell(profile, cell)
print(spec["label"])
print(json.dumps(spec.get("model", {}), indent=1))  # measured cells (real data) have no model

# %%
record = run_cell(spec, profile, results_root=results_root, data_root=data_root, force=force)
{k: v for k, v in record.items() if k not in ("spec", "history")}

# %%
from IPython.display import Image, display
if "samples" in record:
    display(Image(filename=str(results_dir(profile, results_root) / record["samples"])))
