"""Triton pooling kernels: the QRNN recurrence on GPUs (and on the CPU under ``TRITON_INTERPRET=1``).

Same contract as :mod:`quasirnn.ops.torch_kernel` and the numba CPU kernel (``pool_forward`` /
``pool_backward``), for float32, float64, float16 and bfloat16 inputs. The recurrence is
accumulated in float32 (float64 for float64 inputs); outputs come back in the input dtype.

What one kernel launch does, per time step and channel (paper §2, eq. 1–5, §2.1 zoneout)::

    z = tanh(Z)  f = σ(F)  o = σ(O)  i = σ(I)          (when ``activate``; else taken as given)
    f ← 1 − m ⊙ (1 − f)                                 (zoneout keep-mask m, if any)
    c_t = f ⊙ c_{t−1} + (1 − f) ⊙ z    or    f ⊙ c_{t−1} + m ⊙ i ⊙ z   (ifo)
    h_t = o ⊙ c_t

so the gate tensor is read once and c and h are written once. The backward pass is its own
reverse-time recurrence, ``G_t = g_t + f_{t+1} ⊙ G_{t+1}`` with ``g_t = ∂L/∂c_t + o_t ⊙ ∂L/∂h_t``,
that recomputes the activations and writes the gradients of the pre-activations.

Work split. Every channel (b, h) is an independent recurrence, so programs own a block of
``BLOCK`` channels of one batch row. When B × H is too small to fill the GPU (batch 8 × 320
channels is 40 blocks of 64 for 132 multiprocessors), the time axis is cut into chunks too: both
recurrences are first-order linear scans, so a chunk is summarised by ``(A, b)`` with
``c_end = A ⊙ c_start + b`` (A the product of the chunk's forget gates, b its result from a zero
start). Three launches then do the work: summaries of all chunks in parallel, a short
sequential combine over chunks per channel, and the chunks again in parallel from their true
starting values. :func:`plan` picks the chunking from the shape and the device.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple, Optional

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None

AVAILABLE = triton is not None

#: Shortest time chunk worth a separate program (shorter chunks spend more on the combine).
MIN_CHUNK = 16
#: Programs per multiprocessor the planner aims for; the interpreter gets a small fixed target.
PROGRAMS_PER_SM = 4
INTERPRETER_TARGET = 8


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def usable_on(device: torch.device) -> bool:
    """Whether the Triton kernels can run on tensors of ``device``: CUDA with triton
    installed, or any device's CPU tensors under the Triton interpreter."""
    if not AVAILABLE:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and interpreting()


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


def plan(T: int, B: int, H: int, device: torch.device, chunk: Optional[int] = None) -> Plan:
    """Choose the channel block and the time chunking for a (T, B, H) pooling on ``device``.

    Splits time only when the channel blocks alone give fewer programs than
    ``PROGRAMS_PER_SM`` × multiprocessors, and never into chunks shorter than ``MIN_CHUNK``.
    ``chunk`` forces a chunk length (tests use it to exercise the chunked path).
    """
    block = _channel_block(H)
    programs = triton.cdiv(H, block) * max(B, 1)
    if chunk is None:
        if device.type == "cuda":
            target = PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count
        else:
            target = INTERPRETER_TARGET
        n = max(1, min(math.ceil(target / programs), T // MIN_CHUNK))
        chunk = math.ceil(T / n) if T else 1
    chunk = max(1, int(chunk))
    n_chunks = max(1, math.ceil(T / chunk))
    return Plan(block, chunk, n_chunks, max(1, min(4, block // 32)))


if AVAILABLE:

    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _tanh(x):
        # tanh(x) = 2σ(2x) − 1: one exp, saturates to ±1 without overflow.
        return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0

    @triton.jit
    def _load_gates(z_ptr, f_ptr, i_ptr, m_ptr, lanes, HAS_I: tl.constexpr, HAS_MASK: tl.constexpr,
                    ACTIVATE: tl.constexpr, ACC: tl.constexpr):
        """Gates at one step: (z, σ(F) before zoneout, effective f, i, mask, update u)."""
        z = tl.load(z_ptr, mask=lanes, other=0.0).to(ACC)
        fs = tl.load(f_ptr, mask=lanes, other=0.0).to(ACC)
        if ACTIVATE:
            z = _tanh(z)
            fs = _sigmoid(fs)
        f = fs
        m = fs  # placeholder when there is no mask
        if HAS_MASK:
            m = tl.load(m_ptr, mask=lanes, other=0.0).to(ACC)
            f = 1.0 - m * (1.0 - fs)
        i = z  # placeholder when there is no input gate
        if HAS_I:
            i = tl.load(i_ptr, mask=lanes, other=0.0).to(ACC)
            if ACTIVATE:
                i = _sigmoid(i)
            u = i * z
            if HAS_MASK:
                u = u * m  # a zoned-out channel takes no input
        else:
            u = (1.0 - f) * z
        return z, fs, f, i, m, u

    @triton.jit
    def _fwd_summary_kernel(
        Z, F, I, M, A_OUT, B_OUT,
        T, B, H, CHUNK,
        szt, szb, sft, sfb, sit, sib, smt, smb,
        HAS_I: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr, ACC: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """Per chunk and channel: A = ∏ f_t and b = the chunk's memory from a zero start."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        lanes = offs < H
        b = tl.program_id(1).to(tl.int64)
        k = tl.program_id(2).to(tl.int64)
        t0 = k * CHUNK
        n = tl.minimum(t0 + CHUNK, T) - t0
        z_ptr = Z + b * szb + t0 * szt + offs
        f_ptr = F + b * sfb + t0 * sft + offs
        i_ptr = I + b * sib + t0 * sit + offs
        m_ptr = M + b * smb + t0 * smt + offs
        a = tl.full([BLOCK], 1.0, ACC)
        s = tl.zeros([BLOCK], ACC)
        for _ in range(0, n):
            z, fs, f, i, m, u = _load_gates(z_ptr, f_ptr, i_ptr, m_ptr, lanes, HAS_I, HAS_MASK, ACTIVATE, ACC)
            a = a * f
            s = f * s + u
            z_ptr += szt
            f_ptr += sft
            i_ptr += sit
            m_ptr += smt
        out = (k * B + b) * H + offs
        tl.store(A_OUT + out, a, mask=lanes)
        tl.store(B_OUT + out, s, mask=lanes)

    @triton.jit
    def _combine_kernel(A, BV, INIT, CARRY, N_CHUNKS, B, H,
                        HAS_INIT: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
        """Sequential over chunks: CARRY[k] = the value entering chunk k; x ← A[k] ⊙ x + BV[k].

        Forward (REVERSE false) starts from c0 and walks chunks in time order; backward walks them
        in reverse from zero, carrying f_{t+1} ⊙ G_{t+1} into the chunk before.
        """
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        lanes = offs < H
        b = tl.program_id(1).to(tl.int64)
        x = tl.zeros([BLOCK], ACC)
        if HAS_INIT:
            x = tl.load(INIT + b * H + offs, mask=lanes, other=0.0).to(ACC)
        for j in range(0, N_CHUNKS):
            k = j
            if REVERSE:
                k = N_CHUNKS - 1 - j
            idx = (k.to(tl.int64) * B + b) * H + offs
            tl.store(CARRY + idx, x, mask=lanes)
            x = tl.load(A + idx, mask=lanes, other=1.0) * x + tl.load(BV + idx, mask=lanes, other=0.0)

    @triton.jit
    def _fwd_kernel(
        Z, F, I, O, M, C0, CARRY, C, HOUT,
        T, B, H, CHUNK,
        szt, szb, sft, sfb, sit, sib, sot, sob, smt, smb, sct, scb, sht, shb,
        HAS_I: tl.constexpr, HAS_O: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr,
        HAS_CARRY: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
    ):
        """The forward recurrence over one chunk (all of time when there is one chunk)."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        lanes = offs < H
        b = tl.program_id(1).to(tl.int64)
        k = tl.program_id(2).to(tl.int64)
        t0 = k * CHUNK
        n = tl.minimum(t0 + CHUNK, T) - t0
        if HAS_CARRY:
            c = tl.load(CARRY + (k * B + b) * H + offs, mask=lanes, other=0.0)
        else:
            c = tl.load(C0 + b * H + offs, mask=lanes, other=0.0).to(ACC)
        z_ptr = Z + b * szb + t0 * szt + offs
        f_ptr = F + b * sfb + t0 * sft + offs
        i_ptr = I + b * sib + t0 * sit + offs
        o_ptr = O + b * sob + t0 * sot + offs
        m_ptr = M + b * smb + t0 * smt + offs
        c_ptr = C + b * scb + t0 * sct + offs
        h_ptr = HOUT + b * shb + t0 * sht + offs
        for _ in range(0, n):
            z, fs, f, i, m, u = _load_gates(z_ptr, f_ptr, i_ptr, m_ptr, lanes, HAS_I, HAS_MASK, ACTIVATE, ACC)
            c = f * c + u
            tl.store(c_ptr, c.to(C.dtype.element_ty), mask=lanes)
            if HAS_O:
                o = tl.load(o_ptr, mask=lanes, other=0.0).to(ACC)
                if ACTIVATE:
                    o = _sigmoid(o)
                tl.store(h_ptr, (o * c).to(HOUT.dtype.element_ty), mask=lanes)
            z_ptr += szt
            f_ptr += sft
            i_ptr += sit
            o_ptr += sot
            m_ptr += smt
            c_ptr += sct
            h_ptr += sht

    @triton.jit
    def _upstream(gc_ptr, gh_ptr, o_ptr, gl, is_last, lanes,
                  HAS_GC: tl.constexpr, HAS_GH: tl.constexpr, HAS_GL: tl.constexpr, HAS_O: tl.constexpr,
                  ACTIVATE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
        """g_t = ∂L/∂c_t + o_t ⊙ ∂L/∂h_t (+ ∂L/∂c_T at the last step); also returns (o, ∂L/∂h_t)."""
        g = tl.zeros([BLOCK], ACC)
        if HAS_GC:
            g += tl.load(gc_ptr, mask=lanes, other=0.0).to(ACC)
        if HAS_GL:
            g += tl.where(is_last, gl, 0.0)
        o = tl.zeros([BLOCK], ACC)
        gh = tl.zeros([BLOCK], ACC)  # no gradient for h: its term (and do) is zero
        if HAS_O:
            o = tl.load(o_ptr, mask=lanes, other=0.0).to(ACC)
            if ACTIVATE:
                o = _sigmoid(o)
            if HAS_GH:
                gh = tl.load(gh_ptr, mask=lanes, other=0.0).to(ACC)
                g += gh * o
        return g, o, gh

    @triton.jit
    def _bwd_summary_kernel(
        F, O, M, GC, GH, GL, A_OUT, B_OUT,
        T, B, H, CHUNK,
        sft, sfb, sot, sob, smt, smb, sgct, sgcb, sght, sghb,
        HAS_O: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr,
        HAS_GC: tl.constexpr, HAS_GH: tl.constexpr, HAS_GL: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
    ):
        """Per chunk, in reverse: A = ∏ f_t and b = f_{t0} ⊙ G_{t0} from a zero carry-in."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        lanes = offs < H
        b = tl.program_id(1).to(tl.int64)
        k = tl.program_id(2).to(tl.int64)
        t0 = k * CHUNK
        t1 = tl.minimum(t0 + CHUNK, T)
        last = t1 - 1
        f_ptr = F + b * sfb + last * sft + offs
        o_ptr = O + b * sob + last * sot + offs
        m_ptr = M + b * smb + last * smt + offs
        gc_ptr = GC + b * sgcb + last * sgct + offs
        gh_ptr = GH + b * sghb + last * sght + offs
        gl = tl.zeros([BLOCK], ACC)
        if HAS_GL:
            gl = tl.load(GL + b * H + offs, mask=lanes, other=0.0).to(ACC)
        a = tl.full([BLOCK], 1.0, ACC)
        d = tl.zeros([BLOCK], ACC)
        for s in range(0, t1 - t0):
            g, o, gh = _upstream(gc_ptr, gh_ptr, o_ptr, gl, last - s == T - 1, lanes,
                                 HAS_GC, HAS_GH, HAS_GL, HAS_O, ACTIVATE, ACC, BLOCK)
            f = tl.load(f_ptr, mask=lanes, other=0.0).to(ACC)
            if ACTIVATE:
                f = _sigmoid(f)
            if HAS_MASK:
                f = 1.0 - tl.load(m_ptr, mask=lanes, other=0.0).to(ACC) * (1.0 - f)
            d = f * (g + d)
            a = a * f
            f_ptr -= sft
            o_ptr -= sot
            m_ptr -= smt
            gc_ptr -= sgct
            gh_ptr -= sght
        out = (k * B + b) * H + offs
        tl.store(A_OUT + out, a, mask=lanes)
        tl.store(B_OUT + out, d, mask=lanes)

    @triton.jit
    def _bwd_kernel(
        Z, F, I, O, M, C0, C, GC, GH, GL, CARRY, DZ, DF, DI, DO, DC0,
        T, B, H, CHUNK,
        szt, szb, sft, sfb, sit, sib, sot, sob, smt, smb, sct, scb, sgct, sgcb, sght, sghb,
        sdzt, sdzb, sdft, sdfb, sdit, sdib, sdot, sdob,
        HAS_I: tl.constexpr, HAS_O: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr,
        HAS_GC: tl.constexpr, HAS_GH: tl.constexpr, HAS_GL: tl.constexpr, HAS_CARRY: tl.constexpr,
        ACC: tl.constexpr, BLOCK: tl.constexpr,
    ):
        """Reverse-time recurrence over one chunk; gradients of the (pre-activation) inputs."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        lanes = offs < H
        b = tl.program_id(1).to(tl.int64)
        k = tl.program_id(2).to(tl.int64)
        t0 = k * CHUNK
        t1 = tl.minimum(t0 + CHUNK, T)
        last = t1 - 1
        d = tl.zeros([BLOCK], ACC)  # f_{t+1} ⊙ G_{t+1}, the gradient flowing in from the right
        if HAS_CARRY:
            d = tl.load(CARRY + (k * B + b) * H + offs, mask=lanes, other=0.0)
        gl = tl.zeros([BLOCK], ACC)
        if HAS_GL:
            gl = tl.load(GL + b * H + offs, mask=lanes, other=0.0).to(ACC)
        c0 = tl.load(C0 + b * H + offs, mask=lanes, other=0.0).to(ACC)
        z_ptr = Z + b * szb + last * szt + offs
        f_ptr = F + b * sfb + last * sft + offs
        i_ptr = I + b * sib + last * sit + offs
        o_ptr = O + b * sob + last * sot + offs
        m_ptr = M + b * smb + last * smt + offs
        c_ptr = C + b * scb + last * sct + offs
        gc_ptr = GC + b * sgcb + last * sgct + offs
        gh_ptr = GH + b * sghb + last * sght + offs
        dz_ptr = DZ + b * sdzb + last * sdzt + offs
        df_ptr = DF + b * sdfb + last * sdft + offs
        di_ptr = DI + b * sdib + last * sdit + offs
        do_ptr = DO + b * sdob + last * sdot + offs
        cur = tl.load(c_ptr, mask=lanes, other=0.0).to(ACC)  # c_t
        for s in range(0, t1 - t0):
            t = last - s
            z, fs, f, i, m, u = _load_gates(z_ptr, f_ptr, i_ptr, m_ptr, lanes, HAS_I, HAS_MASK, ACTIVATE, ACC)
            g, o, gh = _upstream(gc_ptr, gh_ptr, o_ptr, gl, t == T - 1, lanes,
                                 HAS_GC, HAS_GH, HAS_GL, HAS_O, ACTIVATE, ACC, BLOCK)
            if HAS_O:
                d_o = gh * cur
                if ACTIVATE:
                    d_o = d_o * o * (1.0 - o)
                tl.store(do_ptr, d_o.to(DO.dtype.element_ty), mask=lanes)
            G = g + d  # ∂L/∂c_t
            prev = tl.load(c_ptr - sct, mask=lanes & ((offs * 0 + t) > 0), other=0.0).to(ACC)
            prev = tl.where(t > 0, prev, c0)  # c_{t-1}
            if HAS_I:
                Gu = G
                if HAS_MASK:
                    Gu = G * m
                dz = Gu * i
                df = G * prev
                di = Gu * z
                if ACTIVATE:
                    di = di * i * (1.0 - i)
                tl.store(di_ptr, di.to(DI.dtype.element_ty), mask=lanes)
            else:
                dz = G * (1.0 - f)
                df = G * (prev - z)
            if HAS_MASK:
                df = df * m
            if ACTIVATE:
                dz = dz * (1.0 - z * z)
                df = df * fs * (1.0 - fs)
            tl.store(dz_ptr, dz.to(DZ.dtype.element_ty), mask=lanes)
            tl.store(df_ptr, df.to(DF.dtype.element_ty), mask=lanes)
            d = f * G
            cur = prev
            z_ptr -= szt
            f_ptr -= sft
            i_ptr -= sit
            o_ptr -= sot
            m_ptr -= smt
            c_ptr -= sct
            gc_ptr -= sgct
            gh_ptr -= sght
            dz_ptr -= sdzt
            df_ptr -= sdft
            di_ptr -= sdit
            do_ptr -= sdot
        if k == 0:
            tl.store(DC0 + b * H + offs, d.to(DC0.dtype.element_ty), mask=lanes)


# --------------------------------------------------------------------------- host side


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _acc_torch(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _st(x: Optional[Tensor]) -> tuple[int, int]:
    """(time stride, batch stride) of a (T, B, H) operand with a contiguous last dimension."""
    if x is None or x.numel() == 0:
        return 0, 0
    if x.stride(-1) != 1:
        raise ValueError("Triton pooling kernels need operands whose last (H) dimension is contiguous")
    return x.stride(0), x.stride(1)


def _check_device(x: Tensor) -> None:
    if not AVAILABLE:
        raise RuntimeError("backend='triton' needs the triton package (pip install triton)")
    if not usable_on(x.device):
        raise RuntimeError(
            f"backend='triton' runs on CUDA tensors, or on CPU tensors only under the Triton "
            f"interpreter (TRITON_INTERPRET=1, for testing); got tensors on {x.device}"
        )


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
    _check_device(z)
    T, B, H = z.shape
    c = torch.empty((T, B, H), dtype=z.dtype, device=z.device)
    h = torch.empty_like(c) if o is not None else c.new_empty(0)
    if T == 0 or B == 0 or H == 0:
        return c, h
    c0 = c0.contiguous()
    p = plan(T, B, H, z.device, chunk)
    acc, acc_t = _acc(z.dtype), _acc_torch(z.dtype)
    flags = dict(HAS_I=i is not None, HAS_MASK=mask is not None, ACTIVATE=bool(activate), ACC=acc, BLOCK=p.block)
    dummy = z
    ii, oo, mm = (dummy if x is None else x for x in (i, o, mask))
    grid = (triton.cdiv(H, p.block), B, p.n_chunks)
    carry = dummy
    if p.n_chunks > 1:
        a_sum = torch.empty((p.n_chunks, B, H), dtype=acc_t, device=z.device)
        b_sum = torch.empty_like(a_sum)
        carry = torch.empty_like(a_sum)
        _fwd_summary_kernel[grid](
            z, f, ii, mm, a_sum, b_sum, T, B, H, p.chunk,
            *_st(z), *_st(f), *_st(i), *_st(mask), num_warps=p.num_warps, **flags,
        )
        _combine_kernel[grid[:2]](
            a_sum, b_sum, c0, carry, p.n_chunks, B, H,
            HAS_INIT=True, REVERSE=False, ACC=acc, BLOCK=p.block, num_warps=p.num_warps,
        )
    _fwd_kernel[grid](
        z, f, ii, oo, mm, c0, carry, c, h if o is not None else c,
        T, B, H, p.chunk,
        *_st(z), *_st(f), *_st(i), *_st(o), *_st(mask), *_st(c), *_st(h),
        HAS_O=o is not None, HAS_CARRY=p.n_chunks > 1, num_warps=p.num_warps, **flags,
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
    _check_device(z)
    T, B, H = z.shape
    if out is None:
        out = tuple(None if x is None else torch.empty((T, B, H), dtype=z.dtype, device=z.device) for x in (z, f, i, o))
    dz, df, di, d_o = out
    dc0 = torch.zeros((B, H), dtype=c0.dtype, device=z.device)
    if T == 0 or B == 0 or H == 0:
        return dz, df, di, d_o, dc0
    p = plan(T, B, H, z.device, chunk)
    acc, acc_t = _acc(z.dtype), _acc_torch(z.dtype)
    has_gh = o is not None and grad_h is not None
    up = dict(HAS_O=o is not None, HAS_MASK=mask is not None, ACTIVATE=bool(activate), HAS_GC=grad_c is not None,
              HAS_GH=has_gh, HAS_GL=grad_last is not None, ACC=acc, BLOCK=p.block)
    dummy = z
    ii, oo, mm, gc, gh, gl = (dummy if x is None else x for x in (i, o, mask, grad_c, grad_h if has_gh else None, grad_last))
    gl = gl.contiguous()
    c0 = c0.contiguous()
    grid = (triton.cdiv(H, p.block), B, p.n_chunks)
    st_gh = _st(grad_h if has_gh else None)
    carry = dummy
    if p.n_chunks > 1:
        a_sum = torch.empty((p.n_chunks, B, H), dtype=acc_t, device=z.device)
        b_sum = torch.empty_like(a_sum)
        carry = torch.empty_like(a_sum)
        _bwd_summary_kernel[grid](
            f, oo, mm, gc, gh, gl, a_sum, b_sum, T, B, H, p.chunk,
            *_st(f), *_st(o), *_st(mask), *_st(grad_c), *st_gh, num_warps=p.num_warps, **up,
        )
        _combine_kernel[grid[:2]](
            a_sum, b_sum, dummy, carry, p.n_chunks, B, H,
            HAS_INIT=False, REVERSE=True, ACC=acc, BLOCK=p.block, num_warps=p.num_warps,
        )
    _bwd_kernel[grid](
        z, f, ii, oo, mm, c0, c, gc, gh, gl, carry,
        dz, df, dummy if di is None else di, dummy if d_o is None else d_o, dc0,
        T, B, H, p.chunk,
        *_st(z), *_st(f), *_st(i), *_st(o), *_st(mask), *_st(c), *_st(grad_c), *st_gh,
        *_st(dz), *_st(df), *_st(di), *_st(d_o),
        HAS_I=i is not None, HAS_CARRY=p.n_chunks > 1, num_warps=p.num_warps, **up,
    )
    return dz, df, di, d_o, dc0
