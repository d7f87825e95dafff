"""Triton pooling kernels: the QRNN recurrence on GPUs (and on the CPU under ``TRITON_INTERPRET=1``).

Same contract as :mod:`.torch_kernel` and the numba kernel of :mod:`.cpu_kernel` (``pool_forward`` /
``pool_backward``), for float32, float64, float16 and bfloat16 inputs. The recurrence is
accumulated in float32 (float64 for float64 inputs); outputs come back in the input dtype.

What one kernel launch does, per time step and channel (paper §2, eq. 1–5, §2.1 zoneout)::

    z = tanh(Z)  f = σ(F)  o = σ(O)  i = σ(I)          (when ``activate``; else taken as given)
    f ← 1 − m ⊙ (1 − f)                                 (zoneout keep-mask m, if any)
    c_t = f ⊙ c_{t−1} + (1 − f) ⊙ z    or    f ⊙ c_{t−1} + m ⊙ i ⊙ z   (ifo)
    h_t = o ⊙ c_t

so the gate tensor is read once and c and h are written once. The backward pass is its own
reverse-time recurrence, ``G_t = g_t + f_{t+1} ⊙ G_{t+1}`` with ``g_t = ∂L/∂c_t + o_t ⊙ ∂L/∂h_t``,
that recomputes the activations and writes the gradients of the pre-activations. Each kernel
walks time in tiles of BT steps (:mod:`.triton_tiles`), loading the whole tile of
every operand before computing, so that many loads are in flight per thread.

Work split. Every channel (b, h) is an independent recurrence, so programs own a block of
``BLOCK`` channels of one batch row. When B × H is too small to fill the GPU (batch 8 × 320
channels is 40 blocks of 64 for 132 multiprocessors), the time axis is cut into chunks too: both
recurrences are first-order linear scans, so a chunk is summarised by ``(A, b)`` with
``c_end = A ⊙ c_start + b`` (A the product of the chunk's forget gates, b its result from a zero
start). Three launches then do the work: summaries of all chunks in parallel, a short
sequential combine over chunks per channel, and the chunks again in parallel from their true
starting values (each chunk program combines the summaries before it itself, so the chunked
path is two launches). :func:`plan` picks the chunking from the shape and the device.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from ..triton_runtime import AVAILABLE, acc_dtype, acc_type, check_device, strides, triton

#: Shortest time chunk worth a separate program (shorter chunks spend more on the combine).
MIN_CHUNK = 16
#: Programs per multiprocessor the planner aims for; the interpreter gets a small fixed target.
PROGRAMS_PER_SM = 4
INTERPRETER_TARGET = 8
#: Bytes each thread should load per time-tile iteration (HBM needs many loads in flight).
TILE_BYTES = 64


class Plan(NamedTuple):
    """How a (T, B, H) pooling is split: channel block, time chunk, number of chunks, warps."""

    block: int
    chunk: int
    n_chunks: int
    num_warps: int


def _channel_block(H: int) -> int:
    """Largest power-of-two block (≤ 128) that wastes at most ~10 % of lanes on the edge."""
    if H <= 16:
        return 16
    for block in (128, 64, 32):
        if (triton.cdiv(H, block) * block - H) <= 0.1 * H:
            return block
    return 16


def target_programs(device: torch.device) -> int:
    """How many programs the planner aims for on ``device`` (tests stand in a GPU's count here)."""
    if device.type == "cuda":
        return PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count
    return INTERPRETER_TARGET


def tile_rows(p: Plan, streams: int, itemsize: int, num_warps: Optional[int] = None) -> int:
    """Time steps per tile: enough that each thread loads ≥ ``TILE_BYTES`` per iteration from
    ``streams`` (T, B, H) operands of ``itemsize`` bytes; a power of two in [8, 32]."""
    per_thread = p.block / (32 * (num_warps or p.num_warps))  # tile elements per row per thread
    need = math.ceil(TILE_BYTES / max(1e-9, streams * itemsize * per_thread))
    return min(32, max(8, 1 << (need - 1).bit_length()))


def plan(T: int, B: int, H: int, device: torch.device, chunk: Optional[int] = None) -> Plan:
    """Choose the channel block and the time chunking for a (T, B, H) pooling on ``device``.

    Splits time only when the channel blocks alone give fewer programs than
    ``PROGRAMS_PER_SM`` × multiprocessors, and never into chunks shorter than ``MIN_CHUNK``.
    ``chunk`` forces a chunk length (tests use it to exercise the chunked path).
    """
    block = _channel_block(H)
    programs = triton.cdiv(H, block) * max(B, 1)
    if chunk is None:
        n = max(1, min(math.ceil(target_programs(device) / programs), T // MIN_CHUNK))
        chunk = math.ceil(T / n) if T else 1
        if n > 1:  # whole tiles of 16 steps per chunk
            chunk = math.ceil(chunk / 16) * 16
    chunk = max(1, int(chunk))
    n_chunks = max(1, math.ceil(T / chunk))
    return Plan(block, chunk, n_chunks, max(1, min(4, block // 32)))


if AVAILABLE:
    from . import triton_tiles as tiles


# --------------------------------------------------------------------------- host side


def _count(*xs) -> int:
    return sum(x is not None for x in xs)


def pool_forward(
    z: Tensor, f: Tensor, i: Optional[Tensor], o: Optional[Tensor], c0: Tensor, mask: Optional[Tensor],
    activate: bool, *, chunk: Optional[int] = None,
) -> tuple[Tensor, Tensor]:
    """Forward recurrence. Shapes: z, f, i, o, mask (T, B, H), last dimension contiguous; c0 (B, H).

    Returns ``(c, h)`` in the dtype of ``z``: c (T, B, H); h = o ⊙ c (T, B, H), or an empty tensor
    when ``o`` is None. ``chunk`` forces the time-chunk length (default: :func:`plan`).

    Raises:
        RuntimeError: triton missing, or CPU tensors outside the Triton interpreter.
    """
    check_device(z)
    T, B, H = z.shape
    c = torch.empty((T, B, H), dtype=z.dtype, device=z.device)
    h = torch.empty_like(c) if o is not None else c.new_empty(0)
    if T == 0 or B == 0 or H == 0:
        return c, h
    c0 = c0.contiguous()
    p = plan(T, B, H, z.device, chunk)
    acc, acc_t = acc_type(z.dtype), acc_dtype(z.dtype)
    size = z.element_size()
    flags = dict(HAS_I=i is not None, HAS_MASK=mask is not None, ACTIVATE=bool(activate), ACC=acc, BLOCK=p.block)
    dummy = z
    ii, oo, mm = (dummy if x is None else x for x in (i, o, mask))
    grid = (triton.cdiv(H, p.block), B, p.n_chunks)
    a_sum = b_sum = dummy
    if p.n_chunks > 1:
        a_sum = torch.empty((p.n_chunks, B, H), dtype=acc_t, device=z.device)
        b_sum = torch.empty_like(a_sum)
        tiles.fwd_summary_kernel[grid](
            z, f, ii, mm, a_sum, b_sum, T, B, H, p.chunk,
            *strides(z), *strides(f), *strides(i), *strides(mask), num_warps=p.num_warps,
            BT=tile_rows(p, 2 + _count(i, mask), size), **flags,
        )
    tiles.fwd_kernel[grid](
        z, f, ii, oo, mm, c0, a_sum, b_sum, c, h if o is not None else c,
        T, B, H, p.chunk, p.n_chunks,
        *strides(z), *strides(f), *strides(i), *strides(o), *strides(mask), *strides(c), *strides(h),
        HAS_O=o is not None, HAS_CARRY=p.n_chunks > 1, num_warps=p.num_warps,
        BT=tile_rows(p, 2 + _count(i, o, mask), size), CT=tile_rows(p, 2, a_sum.element_size()), **flags,
    )
    return c, h


def pool_backward(
    grad_h: Optional[Tensor], grad_c: Optional[Tensor], grad_last: Optional[Tensor],
    z: Tensor, f: Tensor, i: Optional[Tensor], o: Optional[Tensor], c0: Tensor, mask: Optional[Tensor],
    c: Tensor, activate: bool, out: Optional[tuple] = None, *, chunk: Optional[int] = None,
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], Tensor]:
    """Reverse-time recurrence for the gradients (same contract as the torch and numba kernels).

    Args mirror :func:`pool_forward`, plus the upstream gradients ``grad_h``/``grad_c`` (T, B, H)
    and ``grad_last`` (B, H, for the final memory c_T), each possibly None, and the forward's
    ``c``. ``out`` = (dz, df, di, do) tensors (or views with a contiguous last dimension) to
    write into; None entries where an input is absent.

    Returns:
        ``(dz, df, di, do, dc0)`` in the input dtype, with respect to the kernel's inputs
        (pre-activations when ``activate``); ``di``/``do`` are None when ``i``/``o`` are None.
    """
    check_device(z)
    T, B, H = z.shape
    if out is None:
        out = tuple(None if x is None else torch.empty((T, B, H), dtype=z.dtype, device=z.device) for x in (z, f, i, o))
    dz, df, di, d_o = out
    dc0 = torch.zeros((B, H), dtype=c0.dtype, device=z.device)
    if T == 0 or B == 0 or H == 0:
        return dz, df, di, d_o, dc0
    p = plan(T, B, H, z.device, chunk)
    acc, acc_t = acc_type(z.dtype), acc_dtype(z.dtype)
    size = z.element_size()
    has_gh = o is not None and grad_h is not None
    up = dict(HAS_O=o is not None, HAS_MASK=mask is not None, ACTIVATE=bool(activate), HAS_GC=grad_c is not None,
              HAS_GH=has_gh, HAS_GL=grad_last is not None, ACC=acc, BLOCK=p.block)
    dummy = z
    ii, oo, mm, gc, gh, gl = (dummy if x is None else x for x in (i, o, mask, grad_c, grad_h if has_gh else None, grad_last))
    gl = gl.contiguous()
    c0 = c0.contiguous()
    grid = (triton.cdiv(H, p.block), B, p.n_chunks)
    st_gh = strides(grad_h if has_gh else None)
    upstream = _count(grad_c, o, grad_h if has_gh else None)
    warps = min(8, 2 * p.num_warps)  # the backward keeps many tiles live: fewer per thread
    a_sum = b_sum = dummy
    if p.n_chunks > 1:
        a_sum = torch.empty((p.n_chunks, B, H), dtype=acc_t, device=z.device)
        b_sum = torch.empty_like(a_sum)
        tiles.bwd_summary_kernel[grid](
            f, oo, mm, gc, gh, gl, a_sum, b_sum, T, B, H, p.chunk,
            *strides(f), *strides(o), *strides(mask), *strides(grad_c), *st_gh, num_warps=p.num_warps,
            BT=tile_rows(p, 1 + _count(mask) + upstream, size), **up,
        )
    tiles.bwd_kernel[grid](
        z, f, ii, oo, mm, c0, c, gc, gh, gl, a_sum, b_sum,
        dz, df, dummy if di is None else di, dummy if d_o is None else d_o, dc0,
        T, B, H, p.chunk, p.n_chunks,
        *strides(z), *strides(f), *strides(i), *strides(o), *strides(mask), *strides(c), *strides(grad_c), *st_gh,
        *strides(dz), *strides(df), *strides(di), *strides(d_o),
        HAS_I=i is not None, HAS_CARRY=p.n_chunks > 1, num_warps=warps,
        BT=tile_rows(p, 5 + upstream, size, warps), CT=tile_rows(p, 2, a_sum.element_size(), warps), **up,
    )
    return dz, df, di, d_o, dc0
