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
# # Jacobian walkthrough: why iMap and iTrans are exactly invertible (Eq. 4–9)
#
# We write out the paper's Eq. 4–9, derive the block-triangular structure of the masked-attention Jacobians and
# their closed-form log-determinants, then check every claim numerically on a tiny tensor: the autograd Jacobian
# in float64, reordered as $[x_1; x_2]$ (supplement Fig. 1), against the closed forms.
#
# **Notation.** A feature map $x \in \mathbb{R}^{C\times H\times W}$ (the paper's $\mathbf h_{\rm in}$) with
# channels $c$ and spatial positions $p = (h, w)$, and the layer's output $y$ ($\mathbf h_{\rm out}$);
# $D = CHW$. $M \in \{0,1\}^{C\times H\times W}$ is a binary mask (Fig. 2), $\odot$ the element-wise product,
# $x_1 = M\odot x$ the *masked* half (what the attention weights are computed from) and $x_2 = (1-M)\odot x$
# the half they act on. $\sigma(t) = 1/(1+e^{-t})$ is the logistic sigmoid, $\epsilon = 10^{-4}$ a floor that
# keeps every scale away from 0, $J = \partial y/\partial x \in \mathbb{R}^{D\times D}$ the Jacobian.
#
# **The masked scheme (Eq. 4–5).** Both layers split $x$ by the mask and transform
#
# $$y_1 = x_1 \odot s \;\text{(iMap, 4a)},\qquad y_1 = x_1 \;\text{(iTrans, 4b)},\qquad
#   y_2 = x_2 \odot f(x_1) \;\text{(both, 4c)},$$
#
# with $\odot$ read as the element-wise product for iMap and the matrix product for iTrans, and $f(x_1)$ the
# attention weights, computed from $x_1$ alone. Since $y_1$ determines $x_1$, the inverse is explicit
# (Eq. 5): $x_1 = y_1 \oslash s$ (or $y_1$), then $f(x_1)$ is recomputed and $x_2 = y_2 \oslash f(x_1)$.

# %% tags=["parameters"]
profile = "smoke"
channels = 4
size = 4
seed = 0
results_root = None

# %%
import torch
from attnflow_core import IMap, ITrans
from attnflow_core.diagnostics import imap_closed_form, itrans_closed_form, itrans_order, jacobian, mask_order
from attnflow_core.repro import results_dir
from attnflow_core.repro.plots import plot_jacobian, plot_masks

torch.manual_seed(seed)
out = results_dir(profile, results_root)
x = torch.randn(1, channels, size, size, dtype=torch.float64)

# %% [markdown]
# ## The four masks (Fig. 2)
# The paper's spatial-channel checkerboard is $M_{c,h,w} = 1$ iff $(c + h + w) \bmod 2 = 0$; the ablation's
# alternatives are the spatial checkerboard ($(h + w) \bmod 2 = 0$ in every channel), the channel-wise split
# (the first $\lceil C/2\rceil$ channels) and a seeded random half. The colour bar gives the two values.

# %%
plot_masks(channels, size, seed, path=out / "fig2_masks.png")

# %% [markdown]
# ## iMap (Eq. 6–7)
#
# **The paper.** The attention weights are
#
# $$\mathbf W_{\rm imap} = G_5\big((1 - M)\, G_4(G_3(G_2(G_1(x)))) + M\,\mathbf b\big), \qquad (6)$$
#
# with $G_1(x) = M\odot x$ (masking), $G_2$ a $1\times1$ convolution over channels, $G_3$ average pooling over
# the channels (one value per position), $G_4$ placing the $HW$ values on the diagonal of a matrix, $G_5$ an
# activation and $\mathbf b$ a learnable variable: on the masked entries the weight is $G_5(\mathbf b)$, which
# is the scale $s$ of Eq. 4a. Eq. 7 states $\det \mathbf W_{\rm imap} = \prod_{M_j = 1} G_5(\mathbf b_j)
# \cdot \big(G_5(G'(x))\big)^{C/2}$ with $G' = G_3\circ G_2\circ G_1$ (a product over the positions is implied).
#
# **Our implementation** (`attnflow_core/attention/imap.py`). With $V \in \mathbb{R}^{C\times C}$ and
# $v \in \mathbb{R}^{C}$ the weight and bias of the $1\times1$ convolution $G_2$, averaging over its outputs
# ($G_3$) gives one linear score per position,
#
# $$g_p = \sum_c \bar v_c\, M_{c,p}\, x_{c,p} + \bar v_0,\qquad \bar v_c = \tfrac1C \textstyle\sum_{c'} V_{c'c},
#   \quad \bar v_0 = \tfrac1C \textstyle\sum_{c'} v_{c'},$$
#
# and, with $G_5 = \epsilon + (1-\epsilon)\,\sigma(\cdot)$,
#
# $$a_p = \epsilon + (1-\epsilon)\,\sigma(g_p + o),\qquad
#   \varsigma_c = \epsilon + (1-\epsilon)\,\sigma(s_c),\qquad
#   y_{c,p} = \begin{cases} \varsigma_c\, x_{c,p} & M_{c,p} = 1,\\ a_p\, x_{c,p} & M_{c,p} = 0.\end{cases}$$
#
# Symbols: $a_p \in (0, 1)$ is the attention weight of position $p$ (the diagonal of $\mathbf W_{\rm imap}$ on
# $x_2$); $o$ is a learnable offset; $s_c$ an unconstrained learnable parameter per channel;
# **$\varsigma_c \in (0,1)$ ("varsigma") is the learned per-channel scale of the masked half** -- the paper's
# $s$ of Eq. 4a, written $G_5(\mathbf b)$ in Eq. 6–7 (our $s_c$ plays the role of $\mathbf b$). We write
# $\varsigma$ because $s$ is its raw parameter and $\sigma$ is the sigmoid.
#
# **The Jacobian is block triangular.** Order the elements as $[x_1; x_2]$ (masked ones first). $y_1$ depends on
# $x_1$ only, and $y_2 = a(x_1)\odot x_2$ depends on $x_2$ only through the factor $x_2$ itself, so
#
# $$J = \begin{pmatrix} \partial y_1/\partial x_1 & \partial y_1/\partial x_2 \\
#                        \partial y_2/\partial x_1 & \partial y_2/\partial x_2 \end{pmatrix}
#     = \begin{pmatrix} \operatorname{diag}\big(\varsigma_c\big)_{M_{c,p}=1} & 0 \\
#                        \big(x_{c,p}\,\partial a_p/\partial x_{c',p'}\big) & \operatorname{diag}\big(a_p\big)_{M_{c,p}=0}
#       \end{pmatrix},$$
#
# where $\partial a_p/\partial x_{c',p'} = (1-\epsilon)\,\sigma'(g_p + o)\,\bar v_{c'}\,M_{c',p'}\,\delta_{pp'}$
# (the score of $p$ reads only position $p$). A block-triangular matrix has the determinant of its diagonal
# blocks, and both are diagonal, so
#
# $$\log\lvert\det J\rvert = \sum_p n_p \log a_p + \sum_{c,p} M_{c,p}\log\varsigma_c,\qquad
#   n_p = \sum_c (1 - M_{c,p}), \qquad (7')$$
#
# $n_p$ being the number of elements that $a_p$ scales: $C/2$ at every position for the checkerboard with even
# $C$, which is Eq. 7's exponent. (Eq. 7 writes $\det(\partial\mathbf h_{\rm in}/\partial\mathbf h_{\rm out})$
# but evaluates $\det\mathbf W_{\rm imap}$, the forward Jacobian's; the inverse has the reciprocal
# determinant.) $a_p, \varsigma_c > \epsilon > 0$ make $J$ non-singular for every input and parameter value.
# Parameters are perturbed away from their initial values so nothing below is trivially the identity.

# %%
imap = IMap(channels).double()
with torch.no_grad():
    for p in imap.parameters():
        p.add_(0.5 * torch.randn_like(p))
J = jacobian(imap, x)
cf = imap_closed_form(imap, x)
order, n1 = mask_order(cf["mask"].flatten())
plot_jacobian(J, order, n1, "iMap Jacobian, [x1 | x2] order", path=out / "jacobian_imap.png")

# %% [markdown]
# The checks: the upper-right block is exactly 0, the diagonal blocks are the diagonal matrices of $\varsigma_c$
# and $a_p$, and the autograd `slogdet` equals the closed form (7').

# %%
Jo = J[order][:, order]
m = cf["mask"]
sc = imap._fixed_scale().detach()[0].expand_as(m)  # ς_c at every (c, h, w)
a = cf["a"][0].expand_as(m)  # a_p in every channel
diag_11 = torch.diag(sc.flatten()[order[:n1]])
diag_22 = torch.diag(a.flatten()[order[n1:]])
print("max |∂y1/∂x2| (must be 0):", Jo[:n1, n1:].abs().max().item())
print("max |∂y1/∂x1 − diag(ς)|:", (Jo[:n1, :n1] - diag_11).abs().max().item())
print("max |∂y2/∂x2 − diag(a)|:", (Jo[n1:, n1:] - diag_22).abs().max().item())
print("elements scaled by each a_p (n_p):\n", cf["n_p"])
print("log det, autograd slogdet :", torch.linalg.slogdet(J).logabsdet.item())
print("log det, Eq. 7' closed form:", cf["logdet"].item())
assert Jo[:n1, n1:].abs().max() == 0
assert torch.allclose(Jo[:n1, :n1], diag_11, rtol=0, atol=1e-14)
assert torch.allclose(Jo[n1:, n1:], diag_22, rtol=0, atol=1e-14)
assert torch.allclose(torch.linalg.slogdet(J).logabsdet, cf["logdet"][0], rtol=1e-10)

# %% [markdown]
# ## iTrans (Eq. 8–9)
#
# **Patches.** The map is cut into an $N = g_h \times g_w$ grid of patches of $P = C\,h_p w_p$ features each
# (here $N = 4$ patches of $2\times 2$ pixels, $P = 16$); $X \in \mathbb{R}^{N\times P}$ holds one patch per row,
# $X_{n,j}$ is feature $j$ of patch $n$, and $m \in \{0,1\}^P$ is the mask of one patch (the same in every
# patch; for the checkerboard with even patch sides it equals the global $M$).
#
# **The paper.**
#
# $$\mathbf h_{\rm out} = \mathbf W_{\rm itrans}\,\mathbf V = G_4\Big(\frac{\mathbf Q\mathbf K^\top}{\sqrt d}\Big)\,\mathbf V,
#   \qquad (8)$$
#
# with $\mathbf Q = G_2(G_1(x))$ and $\mathbf K = G_3(G_1(x))$ ($1\times1$ convolutions of the masked map
# $G_1(x) = M\odot x$), $\mathbf V = M\odot x$, $G_4$ the activation (a row softmax) and $d$ a learnable scale;
# several heads are used as in the Transformer. The invertible form applies the $N\times N$ matrix
# $\mathbf W_{\rm itrans}$, computed from $x_1$, to the other half across patches (Eq. 4c with $\odot$ the
# matrix product), so
#
# $$\det\Big(\frac{\partial\mathbf h_{\rm in}}{\partial\mathbf h_{\rm out}}\Big) = \big(\det \mathbf W_{\rm itrans}\big)^{P/2}
#   = \Big(\det G_4\Big(\frac{\mathbf Q\mathbf K^\top}{\sqrt d}\Big)\Big)^{P/2}, \qquad (9)$$
#
# $P$ being the feature dimension of a patch.
#
# **Our implementation** (`attnflow_core/attention/itrans.py`). For heads $k = 1..H$, $Q_k, K_k \in
# \mathbb{R}^{N\times D_{qk}}$ are the patches of two $1\times1$ convolutions of $M\odot x$ ($D_{qk}$ features per
# patch and head), $\tau = \operatorname{softplus}(t) + 10^{-3}$ is the learnable temperature (the paper's
# $\sqrt d$ becomes $\tau\sqrt{D_{qk}}$), and
#
# $$A = \frac1H\sum_{k=1}^{H}\operatorname{softmax}_{\rm rows}\Big(\frac{Q_k K_k^\top}{\tau\sqrt{D_{qk}}}\Big),\qquad
#   W = A + \gamma I,\quad \gamma = 1 + 10^{-3} + \operatorname{softplus}(g),\qquad
#   Y = X\odot m + W\big(X\odot(1 - m)\big),$$
#
# i.e. $y_1 = x_1$ and $Y_2 = W(x_1)\,X_2$ ($g$ a learnable parameter). The $\gamma I$ term is ours: a row
# softmax alone can be singular (two equal rows), while $W$ is **strictly diagonally dominant** for every
# input and parameter value: $A_{ij} \ge 0$ and $\sum_j A_{ij} = 1$ give
# $W_{ii} = A_{ii} + \gamma > 1 \ge 1 - A_{ii} = \sum_{j\ne i}\lvert W_{ij}\rvert$, so by Gershgorin every
# eigenvalue has positive real part and $\det W > 0$ (complex eigenvalues come in conjugate pairs).
#
# **The Jacobian is block triangular, with $W$ repeated on the diagonal.** For a free feature $j$ ($m_j = 0$),
# $y_{n,j} = \sum_k W_{nk}(x_1)\,x_{k,j}$: feature $j$ of the output patches depends on feature $j$ of the input
# patches through $W$, and on $x_1$ through $W$'s entries. Order the elements as $x_1$, then $x_2$ grouped by
# feature $j$, each group holding that feature in the $N$ patches (`itrans_order`):
#
# $$J = \begin{pmatrix} I & 0 \\ \partial Y_2/\partial x_1 & I_{n_u}\otimes W \end{pmatrix},\qquad
#   \log\lvert\det J\rvert = n_u \log\det W,\qquad n_u = \sum_j (1 - m_j),$$
#
# with $I_{n_u}\otimes W$ the block-diagonal matrix of $n_u$ copies of $W$ and $n_u$ the number of free
# features per patch ($P/2$ for the checkerboard with even $P$: Eq. 9). (Like Eq. 7, Eq. 9 writes
# $\partial\mathbf h_{\rm in}/\partial\mathbf h_{\rm out}$ for the forward Jacobian.)
# The inverse is $X_1 = Y_1$, recompute $W$ from it, and solve $W X_2 = Y_2$.

# %%
itrans = ITrans(channels, heads=3, patches=4).double()
with torch.no_grad():
    for p in itrans.parameters():
        p.add_(0.5 * torch.randn_like(p))
J = jacobian(itrans, x)
cf = itrans_closed_form(itrans, x)
order, n1 = itrans_order(itrans, x.shape)
plot_jacobian(J, order, n1, "iTrans Jacobian, [x1 | x2 by feature] order", path=out / "jacobian_itrans.png")

# %%
Jo = J[order][:, order]
W = cf["W"][0]
n_u = int(cf["n_u"])
print("W =\n", W.numpy().round(3))
print("diagonal dominance margin min_i (W_ii − Σ_{j≠i} |W_ij|):",
      (W.diagonal() - (W.abs().sum(1) - W.diagonal().abs())).min().item())
print("unmasked features per patch n_u:", n_u)
print("max |∂y1/∂x2| (must be 0):", Jo[:n1, n1:].abs().max().item())
print("max |∂y1/∂x1 − I|:", (Jo[:n1, :n1] - torch.eye(n1, dtype=J.dtype)).abs().max().item())
print("max |∂y2/∂x2 − I ⊗ W|:", (Jo[n1:, n1:] - torch.kron(torch.eye(n_u, dtype=J.dtype), W)).abs().max().item())
print("log det, autograd slogdet :", torch.linalg.slogdet(J).logabsdet.item())
print("log det, Eq. 9 closed form:", cf["logdet"].item())
assert Jo[:n1, n1:].abs().max() == 0
assert torch.allclose(Jo[:n1, :n1], torch.eye(n1, dtype=J.dtype), rtol=0, atol=1e-14)
assert torch.allclose(Jo[n1:, n1:], torch.kron(torch.eye(n_u, dtype=J.dtype), W), rtol=0, atol=1e-12)
assert torch.allclose(torch.linalg.slogdet(J).logabsdet, cf["logdet"][0], rtol=1e-10)
