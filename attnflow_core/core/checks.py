"""Input checks shared by every layer and model.

``check_image`` and ``check_cond`` look only at shapes (no host-device sync, safe inside ``forward``);
``check_finite``, ``check_8bit`` and ``check_model_space`` read values (one sync), so models call them
once at their entry points, and never on what needs no reading: integer tensors (never non-finite) and
tensors tagged by :func:`mark_dequantized` (dequantised 8-bit data, finite and in model space by
construction), which is what ``bits_per_dim`` feeds its loss every training step.
"""
from __future__ import annotations

import contextlib
import numbers
import sys
from collections.abc import Iterator

import torch
from torch import Tensor

from .errors import FlowError


def check_image(x: Tensor, channels: int | None = None, name: str = "input") -> None:
    """``x`` must be a ``(B, C, H, W)`` tensor, with ``C == channels`` when given."""
    if not isinstance(x, Tensor):
        raise FlowError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise FlowError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise FlowError(
            f"{name} has {x.shape[1]} channels but this layer was built for {channels} "
            f"(shape {tuple(x.shape)})"
        )


def check_cond(cond: Tensor | None, cond_channels: int, x: Tensor, layer: str) -> None:
    """A conditional layer needs ``cond`` of shape ``(B, cond_channels, H, W)`` matching ``x``."""
    if cond_channels == 0:
        return
    if cond is None:
        raise FlowError(f"{layer} was built with cond_channels={cond_channels} but got cond=None")
    if not isinstance(cond, Tensor) or cond.dim() != 4 or cond.shape[0] != x.shape[0] \
            or cond.shape[1] != cond_channels or cond.shape[2:] != x.shape[2:]:
        got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
        raise FlowError(
            f"{layer}: cond must have shape ({x.shape[0]}, {cond_channels}, {x.shape[2]}, {x.shape[3]}), "
            f"got {got}"
        )


_DEQUANTIZED = "_attnflow_dequantized"


def mark_dequantized(x: Tensor) -> Tensor:
    """Tag ``x`` (and return it) as dequantised 8-bit data, :math:`(k + u)/256 - 1/2` with integer
    ``k`` in 0..255 and ``u`` in [0, 1]: finite and in ``[-1/2, 1/2]`` by construction, so the value
    checks below pass it without reading it. The tag is a Python attribute of this tensor object only
    (results of operations on it are untagged); do not modify a tagged tensor in place."""
    setattr(x, _DEQUANTIZED, True)
    return x


def is_dequantized(x: Tensor) -> bool:
    return bool(getattr(x, _DEQUANTIZED, False))


def _needs_reading(x: Tensor) -> bool:
    return (torch.is_floating_point(x) or x.is_complex()) and not is_dequantized(x)


def check_8bit(x: Tensor, name: str = "8-bit image batch") -> None:
    """A float tensor of 8-bit images must be finite with values in 0..255 (one host sync)."""
    if not _needs_reading(x):
        return
    if not bool(((x >= 0) & (x <= 255)).all()):  # NaN fails both comparisons, ±Inf one of them
        check_finite(x, name)
        raise FlowError(f"bits_per_dim expects 8-bit images with values in 0..255, got range "
                        f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; pass uint8 data, not model-space data")


MAX_BITS = 16  # 2^16 levels still dequantise exactly in float32 (24-bit mantissa)


def check_bit_depth(x: Tensor, bits: int | None = None, name: str = "image batch") -> int:
    """The bit depth ``b`` of integer-valued images ``x``: ``bits`` if declared (1..16), else 8 for uint8 and
    float tensors; any other integer dtype must declare it (16-bit images held as int32, or label IDs as
    int64, are not 8-bit images). Values must lie in ``0..2^b − 1``: read (one host sync) for integer
    tensors other than uint8 at 8 bits and for floats at a declared ``b != 8`` (8-bit floats: :func:`check_8bit`)."""
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, numbers.Integral)
                             or not 1 <= bits <= MAX_BITS):
        raise FlowError(f"bits (the images' declared bit depth) must be an integer in 1..{MAX_BITS}, got {bits!r}")
    floating = torch.is_floating_point(x)
    if bits is None:
        if floating or x.dtype == torch.uint8:
            return 8
        rng = "" if x.numel() == 0 else f" with values in [{int(x.min())}, {int(x.max())}]"
        raise FlowError(f"{name} has integer dtype {x.dtype}{rng}: only uint8 is read as 8-bit images; declare "
                        f"the bit depth (bits=16 for 16-bit images) or convert to uint8; label IDs are not images")
    top = 2 ** bits - 1
    if (x.dtype == torch.uint8 and bits == 8) or (floating and bits == 8) or x.numel() == 0:
        return bits
    if floating:
        check_finite(x, name)
    v = x.to(torch.int64) if x.dtype == torch.bool else x
    lo, hi = (float(t) for t in torch.aminmax(v.detach()))
    if lo < 0 or hi > top:
        raise FlowError(f"{name} of dtype {x.dtype} was declared {bits}-bit (values 0..{top}), got "
                        f"values in [{lo:.6g}, {hi:.6g}]")
    return bits


def check_finite(x: Tensor, name: str = "input") -> None:
    """Raise :class:`FlowError` if ``x`` holds NaN or Inf (one host sync: call at model entry; none for
    integer or :func:`mark_dequantized` tensors)."""
    if not _needs_reading(x):
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise FlowError(f"{name} contains {n_bad} non-finite value(s) (NaN or Inf) out of {x.numel()}; "
                        f"check the data pipeline (a division by zero, a failed image decode)")


def check_model_space(x: Tensor, name: str = "input", hint: str = "") -> None:
    """``x`` must be a float tensor with values in model space ``[-0.5, 0.5]`` (one host sync; none for
    :func:`mark_dequantized` tensors)."""
    if not torch.is_floating_point(x):
        raise FlowError(f"{name} must be a float tensor in model space [-0.5, 0.5], got dtype {x.dtype}"
                        + (f"; {hint}" if hint else ""))
    if is_dequantized(x):
        return
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if lo < -0.5 or hi > 0.5:
        raise FlowError(f"{name} must lie in model space [-0.5, 0.5], got range [{lo:.4g}, {hi:.4g}]"
                        + (f"; {hint}" if hint else ""))


_READS = ("__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy")


def _caller() -> str:
    """``file:line`` of the frame that reads the tensor (innermost outside this module)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename == __file__:
        f = f.f_back
    return "?" if f is None else f"{f.f_code.co_filename}:{f.f_lineno}"


@contextlib.contextmanager
def count_host_reads() -> Iterator[list[str]]:
    """Record the reads of tensor values into Python (``bool``, ``float``, ``int``, ``.item()``,
    ``.tolist()``, ``.numpy()``: each a host-device sync for a tensor on an accelerator) while active.

    Yields the list of ``"<method> at <file>:<line>"`` of the reading frame (the package's own reads are
    those under ``attnflow_core/``; torch's optimisers read their CPU step counters, no device sync).
    For tests that a code path (a loss, a training step) reads nothing; it patches ``torch.Tensor``
    process-wide, so use it in one thread."""
    calls: list[str] = []
    own = {n: torch.Tensor.__dict__[n] for n in _READS if n in torch.Tensor.__dict__}

    def counting(name: str, read):
        def counted(self, *args, **kwargs):
            calls.append(f"{name} at {_caller()}")
            return read(self, *args, **kwargs)
        return counted

    try:
        for n in _READS:
            setattr(torch.Tensor, n, counting(n, getattr(torch.Tensor, n)))
        yield calls
    finally:
        for n in _READS:  # put back exactly what the class itself defined
            if n in own:
                setattr(torch.Tensor, n, own[n])
            else:
                delattr(torch.Tensor, n)
