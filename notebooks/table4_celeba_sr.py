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

# %%
import pandas as pd
from attnflow_core.repro import collect, results_dir, write_table
from attnflow_core.repro.tables.table4_celeba_sr import PAPER_BICUBIC, UNUSED_REFERENCE_CONV, paper_size_parameters

name = "table4_celeba_sr"
df = collect(name, profile, results_root=results_root, data_root=data_root)
df["paper_size_params"] = df["label"].map(paper_size_parameters())  # the architecture check, at paper size
first = df.iloc[0]
bicubic = {"label": "Bicubic", "method": "Bicubic", "ssim": round(first["bicubic_ssim"], 4),
           "psnr": round(first["bicubic_psnr"], 3), "lr_psnr": round(first["bicubic_lr_psnr"], 3),
           "lpips": "n/a" if pd.isna(first["bicubic_lpips"]) else round(first["bicubic_lpips"], 4),
           **{f"paper_{k}": v for k, v in PAPER_BICUBIC.items()}, "paper_setting": "–", "n_test": first["n_test"],
           "image_shape": first["image_shape"], "dataset": first["dataset"], "profile": first["profile"],
           "hardware": first["hardware"]}
table = pd.concat([pd.DataFrame([bicubic]), df], ignore_index=True)
for c in ("levels", "steps", "paper_size_params", "n_test"):
    table[c] = table[c].astype("Int64")  # integers, with an empty cell in the bicubic row
cols = ["label", "paper_setting", "levels", "steps", "params_M", "paper_size_params", "paper_params_M",
        "ssim", "paper_ssim", "psnr", "paper_psnr", "lr_psnr", "paper_lr_psnr", "lpips", "paper_lpips",
        "test_bpd", "n_test", "image_shape", "dataset", "train_steps", "train_seconds", "hardware", "profile"]
lpips_note = next((n for n in df["lpips_note"] if n), "")
note = (f"Metrics: mean over temperatures 0.1–0.9 of per-image means ({int(first['n_test'])} test images); "
        f"`levels/steps` are the trained model, `paper_setting` the paper's row, `paper_size_params` our "
        f"count of the paper-size model (CelebA 160×160): the reference code counts {UNUSED_REFERENCE_CONV:,} "
        f"more parameters in every row (an unused 3×3 conv). Data: {first['data_note']}."
        + (f"\n\n{lpips_note}" if lpips_note else ""))
write_table(table, name, profile, results_root, columns=cols, note=note)
table[cols]

# %%
from attnflow_core.repro.sr_plots import (example_files, plot_metrics_vs_temperature, plot_sr_examples,
                                          temperature_frame)

out = results_dir(profile, results_root)
frame = temperature_frame(name, profile, results_root)
bic = {"psnr": first["bicubic_psnr"], "ssim": first["bicubic_ssim"], "lr_psnr": first["bicubic_lr_psnr"],
       "lpips": None if pd.isna(first["bicubic_lpips"]) else first["bicubic_lpips"]}
plot_metrics_vs_temperature(frame, bic, f"Table 4 ({profile}, {first['dataset']}): metrics vs temperature",
                            path=out / f"{name}.png", lpips_note=lpips_note)

# %%
plot_sr_examples(example_files(name, profile, results_root),
                 f"LR | SR samples | HR ({profile}, {first['dataset']}, test image 0)",
                 path=out / f"{name}_samples.png")
