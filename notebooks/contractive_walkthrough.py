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
# # Contractive residual flows, step by step
#
# A residual block `y = x + g(x)` is invertible when `Lip(g) < 1`. On tiny inputs (so every Jacobian
# fits on screen) we look at (1) the log-det power series and how fast it converges, (2) the Russian-roulette
# estimator against the exact `slogdet`, (3) power-iteration `σ̂` against the certified bound of a
# zero-padded convolution, (4) the fixed-point inverse, and (5) the measured Lipschitz constant of each
# attention variant: ours (certified) and the published forms (not).

# %% tags=["parameters"]
profile = "smoke"
results_root = None
seed = 0
draws = 1000

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from attnflow_core.core.io import save_figure, write_text
from attnflow_core.diagnostics.contractive import (
    attention_lipschitz_table, fixed_point_trace, roulette_draws, series_convergence, sigma_table, spectral_layer_demo)
from attnflow_core.flows.logdet import LogDetConfig
from attnflow_core.nn.lipschitz_nets import LipschitzConvNet
from attnflow_core.repro import results_dir

torch.set_num_threads(1)  # every tensor here is tiny: one thread is many times faster than two on a busy CPU
torch.manual_seed(seed)
out = results_dir(profile, results_root)
g = LipschitzConvNet(2, 16, (3, 3), coeff=0.98).double()  # g: 2×3×3 → 2×3×3, Residual Flows' 3-1-3 branch
with torch.no_grad():
    for p in g.parameters():
        p.mul_(3.0)  # push every layer to its 0.98 cap
x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
g(x)
print("certified Lip(g) <=", round(g.lipschitz_bound(), 4), "(0.98³ =", round(0.98 ** 3, 4), ")")

# %% [markdown]
# ## 1. The power series `log det(I + J) = Σ (−1)^{k+1} tr(J^k)/k`
# Exact traces of the dense 18×18 Jacobian; the error of the partial sums falls like `‖J‖^n`, under the
# bound `d·Σ_{k>n} L^k/k` that uses only the certificate `L`.

# %%
s = series_convergence(g, x, n_max=25)
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.semilogy(s["n"], s["error"], "o-", label="|partial sum − slogdet|")
ax.semilogy(s["n"], s["bound"], "--", label="bound d·Σ_{k>n} L^k/k")
ax.set_xlabel("terms n")
ax.set_ylabel("error")
ax.legend(fontsize=8)
ax.set_title(f"‖J‖₂ = {s['spectral_norm']:.3f}, certified L = {s['lip']:.3f}", fontsize=9)
save_figure(out / "contractive_series.png", fig, dpi=110)
print("exact log det:", s["exact"], " 5 terms:", s["partial"][4], " 20 terms:", s["partial"][19])

# %% [markdown]
# ## 2. The Russian-roulette estimator is unbiased
# Poisson(λ = 2) extra terms beyond `n₀ = 2` kept ones, Gaussian Hutchinson probes, one estimate per draw.

# %%
r = roulette_draws(g, x, LogDetConfig(dist="poisson", lam=2.0, n_exact=2), draws=draws)
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.hist(r["estimates"], bins=60, color="tab:blue", alpha=0.7)
ax.axvline(r["exact"], color="k", label="exact slogdet")
ax.axvline(r["mean"], color="tab:red", ls="--", label=f"mean of {draws}")
ax.legend(fontsize=8)
ax.set_xlabel("log-det estimate")
save_figure(out / "contractive_roulette.png", fig, dpi=110)
z = (r["mean"] - r["exact"]) / r["se"]
print(f"exact {r['exact']:.5f}; mean {r['mean']:.5f} ± {r['se']:.5f} (SE) -> {z:+.2f} standard errors; std per draw {r['std']:.3f}")
assert abs(z) < 4

# %% [markdown]
# ## 3. Power iteration underestimates; the certified bound does not
# `σ̂` after 1, 5 and 50 power iterations for a zero-padded 3×3 convolution, its exact norm (dense SVD) and the
# certified bound (the circular convolution on the padded grid, exact by FFT). The layer normalises with
# `uᵀWv + max(0, certified − σ̂)`, so a poor estimate cannot push it over its target:

# %%
sig = pd.DataFrame(sigma_table())
print(sig.round(4).to_string(index=False))
demo = spectral_layer_demo()
print({k: round(v, 4) for k, v in demo.items()})
assert demo["used_exact"] <= demo["coeff"] * (1 + 1e-9)

# %% [markdown]
# ## 4. The fixed-point inverse
# `x ← y − g(x)` contracts by at most `L` per step. Ours stops at `max|Δ| ≤ 1e-8`; the reference's squared
# rule (`Δ² < 1e-5·(1 + |y|)`) stops much earlier, with a far larger error.

# %%
y = x + g(x).detach()
fp = fixed_point_trace(g, y, iters=60)
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.semilogy(fp["delta"], label="max |x_{i+1} − x_i|")
ax.semilogy(fp["error"], label="max |x_i − x*|")
ax.semilogy([fp["lip"] ** i for i in range(len(fp["delta"]))], "--", label="L^i")
ax.axhline(1e-8, color="k", lw=0.6)
ax.set_xlabel("iteration")
ax.legend(fontsize=8)
save_figure(out / "contractive_fixed_point.png", fig, dpi=110)
print(f"reference rule stops at iteration {fp['reference_stop']} (error {fp['reference_error']:.2e}); "
      f"ours at {fp['our_stop']} (error {fp['our_error']:.2e})")

# %% [markdown]
# ## 5. Lip(g) of each attention variant: ours vs published
# Largest local slope `‖J_g(x)‖₂` (power iteration on the autograd Jacobian) over Gaussian inputs at scales 1,
# 10, 100, a constant input and an adversarial search, with every weight matrix scaled 10× and attention
# gates fully open; for Zha's published forms also next to a root of their normaliser. Ours never exceed
# their certificate (< 1); the published forms have none (`inf`).

# %%
lip = pd.DataFrame(attention_lipschitz_table(seed=seed))
write_text(out / "contractive_walkthrough_lipschitz.csv", lip.to_csv(index=False))
lip.round(4)

# %%
ours = lip[lip["branch"].str.startswith("ours")]
assert (ours["measured_max"] <= ours["certificate"] * (1 + 1e-6)).all() and (ours["certificate"] < 1).all()
