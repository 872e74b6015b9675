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
# # Table 4: 8× face super-resolution, SRFlow vs cAttnFlow (iMap, iTrans)
#
# SSIM, PSNR, LR-PSNR and LPIPS of SR samples, each averaged over the temperatures 0.1 … 0.9 (the
# paper's protocol), on uint8 RGB, full image, no border crop (SRFlow's conventions). The bicubic row is
# MATLAB-style bicubic ×8 of the same LR inputs. The **paper** profile trains on CelebA (your own copy);
# the **smoke** profile is a stand-in on photographs bundled with scikit-image / scikit-learn, not faces.

# %% tags=["parameters"]
profile = "smoke"
results_root = None
data_root = None
seeds = None  # one cell per seed; None: the profile's (cpu: [0, 1, 2]; smoke, paper: each cell's own)
steps = None  # training steps; None: the profile's

# %%
# an undeclared parameter (a typo) is an error; a grid other than the one above writes into its own root
from attnflow_core.repro import table_run

run = table_run("table4_celeba_sr", globals())
results_root, data_root = run.results_root, run.data_root

# %%
from attnflow_core.repro import get_table, results_dir, write_table

spec = get_table("table4_celeba_sr")
name = spec.name
ours = run.collect()
table = spec.assemble(ours)
write_table(table, spec, profile, results_root, columns=spec.columns(), note=spec.note(ours))
table[spec.columns()]

# %%
from attnflow_core.repro.sr_plots import (example_files, plot_metrics_vs_temperature, plot_sr_examples,
                                          temperature_frame)

out = results_dir(profile, results_root)
frame = temperature_frame(name, profile, results_root)
dataset = ours.iloc[0]["dataset"]
plot_metrics_vs_temperature(frame, spec.bicubic(ours), f"Table 4 ({profile}, {dataset}): metrics vs temperature",
                            path=out / f"{name}.png", lpips_note=spec.lpips_note(ours))

# %%
plot_sr_examples(example_files(name, profile, results_root),
                 f"LR | SR samples | HR ({profile}, {dataset}, test image 0)",
                 path=out / f"{name}_samples.png")
