"""iTrans: invertible transformer-based attention across patches (paper Eq. 4b, 4c, 8, 9)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import FlowError
from ..core.layer import FlowLayer, LayerExample
from .masks import MASK_KINDS, make_mask

AUTO_PATCHES = 4  # what "auto" asks for: the paper's 4 patches (a 2×2 grid)


def _square_side(n: int, requested: object) -> int:
    r = math.isqrt(n) if n >= 1 else 0
    if r < 1 or r * r != n:
        raise FlowError(f"patches={requested!r}: {n} is not a positive square number (1, 4, 9, 16, ...); "
                        f"pass a (rows, cols) tuple for other grids")
    return r


def parse_patches(patches: object) -> tuple[str, tuple[int, int]]:
    """``("exact", (rows, cols))`` or ``("auto", (g, g))``: the rule and the requested grid of ``patches``
    (see :func:`resolve_patches`); a clear error for anything else."""
    if isinstance(patches, str):
        text = patches.strip()
        if text == "auto":
            g = _square_side(AUTO_PATCHES, patches)
        elif text.startswith("auto:") and text[5:].isdigit():
            g = _square_side(int(text[5:]), patches)
        else:
            raise FlowError(f"patches={patches!r} is not a patch count: use a square number (4, 9, ...), a "
                            f"(rows, cols) tuple, 'auto' (the paper's 4 where the map allows) or 'auto:N'")
        return "auto", (g, g)
    if isinstance(patches, (tuple, list)):
        if len(patches) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in patches):
            raise FlowError(f"a patch grid must be two integers (rows, cols), got {patches!r}")
        gh, gw = int(patches[0]), int(patches[1])
        if gh < 1 or gw < 1:
            raise FlowError(f"patch grid must be positive, got {(gh, gw)}")
        return "exact", (gh, gw)
    if isinstance(patches, bool) or not isinstance(patches, int):
        raise FlowError(f"patches must be an int, a (rows, cols) tuple or 'auto', got {patches!r} "
                        f"({type(patches).__name__})")
    g = _square_side(patches, patches)
    return "exact", (g, g)


def resolve_patches(requested: int | str | tuple[int, int], height: int, width: int) -> tuple[int, int]:
    """The patch grid ``(rows, cols)`` iTrans uses on a ``height × width`` map.

    * an int ``N`` (a square) or a ``(rows, cols)`` tuple: exactly that grid; it must divide the map
      (``height % rows == width % cols == 0``), else a :class:`FlowError` says so;
    * ``"auto"`` (= ``"auto:4"``, the paper's 4 patches) or ``"auto:N"``: the largest square grid
      ``g × g`` with ``g ≤ √N`` that divides both sides (``g = 1`` always does). On MNIST's 28 × 28 at
      two levels: 2 × 2 on the 14 × 14 map, 1 × 1 on the 7 × 7 one.

    With a 1 × 1 grid ``A = softmax`` of one score ``= 1``, so iTrans is the learned scale
    ``y2 = (1 + γ) x2`` (its query/key/temperature get no gradient there)."""
    rule, (gh, gw) = parse_patches(requested)
    if height < 1 or width < 1:
        raise FlowError(f"a feature map must be at least 1×1, got {height}×{width}")
    if rule == "auto":
        g = max(d for d in range(1, gh + 1) if height % d == 0 and width % d == 0)
        return g, g
    if height % gh or width % gw:
        raise FlowError(
            f"ITrans cannot cut a {height}×{width} map into a {gh}×{gw} grid of equal patches "
            f"(patches={requested!r}); choose a grid that divides the map, or patches='auto' "
            f"(the largest square grid up to the paper's 2×2 that divides each level's map)")
    return gh, gw


class ITrans(FlowLayer):
    r"""Invertible transformer-based attention between ``N`` patches.

    The feature map is cut into an ``N = g_h × g_w`` grid of patches of ``P = C·h_p·w_p``
    features each; ``X ∈ R^{N×P}`` holds one patch per row. With the binary mask ``m``
    (the same in every patch; 1 = masked half):

    .. math::
        Q_h, K_h &= \text{patches of } \mathrm{Conv}^{q,k}_{1\times1,h}(M\odot x) \in R^{N\times D}\\
        A &= \tfrac1H \textstyle\sum_{h} \operatorname{softmax}_{\text{rows}}\!\big(Q_h K_h^\top / (d\sqrt{D})\big)\\
        W &= A + \gamma I,\qquad \gamma = 1 + 10^{-3} + \operatorname{softplus}(g)\\
        Y &= X\odot m + W\,(X\odot(1-m))

    (Eq. 4b ``y1 = x1``, Eq. 8 ``y2 = W x2``; heads are summed, then divided by ``H`` so
    ``A`` stays row-stochastic; ``d > 0`` is a learnable temperature.)

    **Invertible by construction.** ``A`` has non-negative entries and unit row sums, so
    :math:`W_{ii} = A_{ii} + \gamma > 1 - A_{ii} = \sum_{j\ne i} |W_{ij}|`: ``W`` is strictly
    diagonally dominant with a positive diagonal for *every* parameter value and input,
    hence non-singular with :math:`\det W > 0` (Gershgorin).

    Inverse: :math:`X\odot m = Y\odot m`, recompute ``W`` from it, then solve
    :math:`W\,(X\odot(1-m)) = Y\odot(1-m)` (an ``N×N`` system).

    Log-det (Eq. 9, exact): :math:`n_u \log\det W` with :math:`n_u = \sum (1-m)` the number
    of unmasked features per patch (``P/2`` for the checkerboard when ``P`` is even).

    Masks given by name are built for one patch and tiled, so they are the same in every
    patch; the spatial-channel checkerboard tiled this way equals the global
    ``(c+h+w) mod 2`` pattern whenever the patch sides are even. An explicit mask tensor
    of shape ``(C, H, W)`` is accepted only if it is the same in every patch.

    The grid: ``patches`` is an int ``N`` (a square), a ``(rows, cols)`` tuple, or ``"auto"`` /
    ``"auto:N"``, resolved against the map size ``size`` given at build time by
    :func:`resolve_patches` (the largest square grid up to ``√N × √N`` that divides the map); the
    grid used is ``self.grid`` (and in the repr). The paper's 4 patches divide every level of its
    32 × 32 inputs; ``"auto"`` is our rule for maps they do not (standard MNIST's last 7 × 7 level).
    On a 1 × 1 grid ``A ≡ 1``, so ``W = 1 + γ``: ``y2 = (1 + γ) x2`` with log-det ``n_u log(1 + γ)``;
    queries, keys and temperature then get no gradient (kept, so every level has the same parameters).

    ``qk_channels`` (per head, default ``2·C``) is not given in the paper; the default
    makes the parameter overhead of a 12-step mARFlow match the paper's +0.24 M at 5 heads.

    References: Sukthanker et al., "Generative Flows with Invertible Attentions", CVPR 2022 (Eq. 4, 8, 9).
    """

    def __init__(self, channels: int, heads: int = 5, patches: int | str | tuple[int, int] = 4,
                 mask: str | Tensor = "checkerboard", qk_channels: int | None = None,
                 cond_channels: int = 0, mask_seed: int = 0, size: tuple[int, int] | None = None) -> None:
        super().__init__(channels, cond_channels)
        if heads < 1:
            raise FlowError(f"ITrans needs at least one head, got {heads}")
        self.heads = heads
        rule, grid = parse_patches(patches)
        if size is not None:
            grid = resolve_patches(patches, *size)  # validates an exact grid against the map now
        elif rule == "auto":
            raise FlowError(f"ITrans(patches={patches!r}) picks its grid from the map it is built for: pass "
                            f"size=(height, width) (the multi-scale models pass each level's; where a model "
                            f"family does not, give an integer patches)")
        self.patches, self.size, self.grid = patches, None if size is None else tuple(size), grid
        self.mask_seed = mask_seed
        self.qk = qk_channels or 2 * channels
        if isinstance(mask, Tensor):
            self.mask_kind = "custom"
            self.register_buffer("custom_mask", mask.detach().to(torch.get_default_dtype()).clone())
        else:
            make_mask(mask, max(channels, 2), 2, 2)  # validate the name early
            self.mask_kind = mask
            self.custom_mask = None
        self.query = nn.Conv2d(channels + cond_channels, heads * self.qk, 1)
        self.key = nn.Conv2d(channels + cond_channels, heads * self.qk, 1)
        self.temperature = nn.Parameter(torch.full((1,), math.log(math.e - 1)))  # softplus -> 1
        self.gamma = nn.Parameter(torch.full((1,), -1.0))
        self._mask_cache: dict[tuple, tuple[Tensor, ...]] = {}

    def extra_repr(self) -> str:
        gh, gw = self.grid
        on = "" if self.size is None else f" on {self.size[0]}×{self.size[1]}"
        return (f"channels={self.channels}, heads={self.heads}, grid={gh}×{gw} "
                f"(patches={self.patches!r}{on}), mask={self.mask_kind!r}")

    # -- patch bookkeeping -------------------------------------------------------------
    def _patch_shape(self, h: int, w: int) -> tuple[int, int]:
        gh, gw = self.grid
        if h % gh or w % gw:
            raise FlowError(
                f"ITrans cannot cut a {h}×{w} map into a {gh}×{gw} grid of equal patches "
                f"(patches={self.patches!r}); choose a grid that divides the map, or patches='auto'")
        return h // gh, w // gw

    def _to_patches(self, t: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, N, C·hp·wp)"""
        b, c, h, w = t.shape
        gh, gw = self.grid
        hp, wp = h // gh, w // gw
        return t.reshape(b, c, gh, hp, gw, wp).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, c * hp * wp)

    def _from_patches(self, t: Tensor, c: int, h: int, w: int) -> Tensor:
        b = t.shape[0]
        gh, gw = self.grid
        hp, wp = h // gh, w // gw
        return t.reshape(b, gh, gw, c, hp, wp).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def _masks(self, h: int, w: int, like: Tensor) -> tuple[Tensor, ...]:
        """Cached per map size, dtype and device: the patch mask ``m`` (C·hp·wp,), ``1 - m``, ``n_u``,
        and ``m`` and ``1 - m`` tiled over the whole map (C, H, W)."""
        key = (h, w, like.dtype, like.device)
        if key not in self._mask_cache:
            hp, wp = self._patch_shape(h, w)
            if self.custom_mask is None:
                m = make_mask(self.mask_kind, self.channels, hp, wp, self.mask_seed)
            else:
                full = self.custom_mask
                if tuple(full.shape) != (self.channels, h, w):
                    raise FlowError(f"custom ITrans mask has shape {tuple(full.shape)}, "
                                    f"input needs {(self.channels, h, w)}")
                per_patch = self._to_patches(full.unsqueeze(0))[0]
                if not torch.equal(per_patch, per_patch[:1].expand_as(per_patch)):
                    raise FlowError(
                        f"the ITrans mask differs between the {self.grid[0] * self.grid[1]} patches of a "
                        f"{h}×{w} map; iTrans needs the same mask in every patch (Eq. 9)")
                m = per_patch[0].view(self.channels, hp, wp)
            m = m.reshape(-1).to(like)
            n = self.grid[0] * self.grid[1]
            tiled = self._from_patches(m.view(1, 1, -1).expand(1, n, -1), self.channels, h, w)[0]
            self._mask_cache[key] = (m, 1 - m, (1 - m).sum(), tiled.contiguous(), (1 - tiled).contiguous())
        return self._mask_cache[key]

    def patch_mask(self, h: int, w: int, like: Tensor) -> Tensor:
        """The mask of one patch, flattened: (C·hp·wp,)."""
        return self._masks(h, w, like)[0]

    # -- the attention matrix ----------------------------------------------------------
    def attention_matrix(self, x1: Tensor, cond: Tensor | None = None) -> Tensor:
        """W (B, N, N) from the masked half ``x1 = M ⊙ x`` (full map layout)."""
        b = x1.shape[0]
        n = self.grid[0] * self.grid[1]
        if n == 1:  # softmax over one score is exactly 1: skip the queries and keys
            a = x1.new_ones(b, 1, 1)
        else:
            inp = x1 if cond is None or self.cond_channels == 0 else torch.cat([x1, cond], dim=1)
            q = self._to_patches(self.query(inp))  # (B, N, heads·qk·hp·wp) -- heads interleaved per position
            k = self._to_patches(self.key(inp))
            if self.heads > 1:  # separate heads: channels are (heads, qk), so split the per-patch features
                q = q.view(b, n, self.heads, -1).transpose(1, 2)  # (B, heads, N, D)
                k = k.view(b, n, self.heads, -1).transpose(1, 2)
            d = q.shape[-1]
            temp = F.softplus(self.temperature) + 1e-3
            scores = q @ k.transpose(-1, -2) / (temp * math.sqrt(d))
            a = torch.softmax(scores, dim=-1)
            if self.heads > 1:  # (for one head the mean over heads is the identity)
                a = a.mean(dim=1)
        return a + self._gamma() * torch.eye(n, dtype=a.dtype, device=a.device)

    def _gamma(self) -> Tensor:
        return 1.0 + 1e-3 + F.softplus(self.gamma)

    # Both directions keep the masked half in the map layout (x ⊙ M, M the tiled patch mask: the same
    # products as in patch layout) and go to patches only for the N×N product / solve. The masked half
    # is formed twice on purpose: one copy feeds W, one the output, so autograd sums the gradients
    # reaching it in the same order as when it was one patch-layout tensor (results are bit-identical).
    # A 1×1 grid needs no patches: W = 1 + γ is one number, y2 = (1 + γ) x2, and the inverse multiplies
    # by 1 / (1 + γ) as the 1×1 solve did (the same values; only γ's gradient is summed in another order).
    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, cond)
        b, c, h, w = x.shape
        _, keep, n_u, tiled, keep_tiled = self._masks(h, w, x)
        if self.grid == (1, 1):
            scale = 1.0 + self._gamma()
            return x * tiled + scale * (x * keep_tiled), n_u * torch.log(scale).expand(b)
        wmat = self.attention_matrix(x * tiled, cond)
        y = x * tiled + self._from_patches(wmat @ (self._to_patches(x) * keep), c, h, w)
        return y, n_u * torch.linalg.slogdet(wmat).logabsdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self.check_input(y, cond)
        _, c, h, w = y.shape
        _, keep, _, tiled, keep_tiled = self._masks(h, w, y)
        y1 = y * tiled
        if self.grid == (1, 1):
            return y1 + (y * keep_tiled) * (1.0 / (1.0 + self._gamma()))
        x2p = torch.linalg.solve(self.attention_matrix(y1, cond), self._to_patches(y) * keep)
        return y1 + self._from_patches(x2p, c, h, w)

    @classmethod
    def examples(cls) -> dict[str, LayerExample]:
        ex = {f"itrans_{m}": LayerExample(lambda m=m: cls(4, heads=2, patches=4, mask=m), (2, 4, 4, 4))
              for m in MASK_KINDS}
        ex["itrans_odd_channels"] = LayerExample(lambda: cls(3, heads=3, patches=4), (2, 3, 4, 4))
        ex["itrans_9_patches"] = LayerExample(lambda: cls(4, heads=1, patches=9), (2, 4, 6, 6))
        ex["itrans_1x1_patches"] = LayerExample(lambda: cls(4, heads=2, patches=(4, 4)), (2, 4, 4, 4))
        ex["itrans_cond"] = LayerExample(lambda: cls(4, heads=2, cond_channels=2), (2, 4, 4, 4), (2, 2, 4, 4))
        ex["itrans_auto_6x6"] = LayerExample(lambda: cls(4, heads=1, patches="auto", size=(6, 6)), (2, 4, 6, 6))
        # a 1×1 grid: A = softmax of one score = 1, so queries, keys and temperature get no gradient
        ex["itrans_auto_1_patch"] = LayerExample(lambda: cls(4, heads=1, patches="auto", size=(3, 3)), (2, 4, 3, 3),
                                                 dead_params=("query.weight", "query.bias", "key.weight",
                                                              "key.bias", "temperature"))
        return ex
