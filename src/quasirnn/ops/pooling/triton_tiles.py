"""The Triton JIT functions behind :mod:`.triton_kernel` (QRNN pooling on GPUs).

Every kernel walks time in tiles: one iteration loads ``[BT, BLOCK]`` tiles (BT time steps of
BLOCK channels) of each operand at once, runs the recurrence over the tile in registers with
``tl.associative_scan`` and the first-order combine (a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂)
(paper §2, eq. 3: c_t = f_t ⊙ c_{t−1} + u_t is such a recurrence in c), carries the memory to
the next tile and stores whole tiles. All of a tile's loads are issued before any of its
stores, so BT steps of every operand are in flight at once, instead of one step per round trip
to memory. Rows past the end of a chunk are made the identity (a = 1, b = 0) of the combine.

Chunked time: a chunk is summarised by (A, b) with c_end = A ⊙ c_start + b; each chunk program
then combines the summaries of the chunks before it (after it, in the backward) itself, so the
chunked path is two launches. This module is imported only when triton is installed.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..triton_runtime import row, sigmoid, tanh


@triton.jit
def _first_order(a1, b1, a2, b2):
    """(a₁, b₁) then (a₂, b₂): x ↦ a₂(a₁x + b₁) + b₂."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _gates(z_ptr, f_ptr, i_ptr, m_ptr, msk, HAS_I: tl.constexpr, HAS_MASK: tl.constexpr,
           ACTIVATE: tl.constexpr, ACC: tl.constexpr):
    """Gate tiles: (z, σ(F) before zoneout, effective f, i, mask, update u), any shape."""
    z = tl.load(z_ptr, mask=msk, other=0.0).to(ACC)
    fs = tl.load(f_ptr, mask=msk, other=0.0).to(ACC)
    if ACTIVATE:
        z = tanh(z)
        fs = sigmoid(fs)
    f = fs
    m = fs  # placeholder when there is no mask
    if HAS_MASK:
        m = tl.load(m_ptr, mask=msk, other=0.0).to(ACC)
        f = 1.0 - m * (1.0 - fs)
    i = z  # placeholder when there is no input gate
    if HAS_I:
        i = tl.load(i_ptr, mask=msk, other=0.0).to(ACC)
        if ACTIVATE:
            i = sigmoid(i)
        u = i * z
        if HAS_MASK:
            u = u * m  # a zoned-out channel takes no input
    else:
        u = (1.0 - f) * z
    return z, fs, f, i, m, u


@triton.jit
def _forget(f_ptr, m_ptr, msk, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr, ACC: tl.constexpr):
    """The effective forget gate tile 1 − m ⊙ (1 − σ(F))."""
    f = tl.load(f_ptr, mask=msk, other=0.0).to(ACC)
    if ACTIVATE:
        f = sigmoid(f)
    if HAS_MASK:
        f = 1.0 - tl.load(m_ptr, mask=msk, other=0.0).to(ACC) * (1.0 - f)
    return f


@triton.jit
def _carry_in(A, BV, x, k, n_chunks, B, b, H, offs, lanes, REVERSE: tl.constexpr, CT: tl.constexpr):
    """The value entering chunk k: x pushed through the summaries (x ← A_j x + b_j) of the chunks
    before k in time order (REVERSE false), or of the chunks after k from the last one back."""
    count = k
    if REVERSE:
        count = n_chunks - 1 - k
    rows = tl.arange(0, CT)
    for j0 in range(0, count, CT):
        j = j0 + rows
        kk = j
        if REVERSE:
            kk = n_chunks - 1 - j
        idx = (kk.to(tl.int64)[:, None] * B + b) * H + offs[None, :]
        msk = (j < count)[:, None] & lanes[None, :]
        a = tl.load(A + idx, mask=msk, other=1.0)
        s = tl.load(BV + idx, mask=msk, other=0.0)
        a, s = tl.associative_scan((a, s), 0, _first_order)
        x = row(a, rows, CT - 1) * x + row(s, rows, CT - 1)
    return x


@triton.jit
def _chunk_block(T, H, CHUNK, BLOCK: tl.constexpr):
    """This program's BLOCK channels (offsets and in-range mask), its batch row b, its time chunk
    k and that chunk's steps [t0, t1), from the launch grid (channel blocks, B, chunks)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    lanes = offs < H
    b = tl.program_id(1).to(tl.int64)
    k = tl.program_id(2).to(tl.int64)
    t0 = k * CHUNK
    return offs, lanes, b, k, t0, tl.minimum(t0 + CHUNK, T)


@triton.jit
def _scan_tile(Z, F, I, M, b, t0, n, rows, offs, lanes, szt, szb, sft, sfb, sit, sib, smt, smb,
               HAS_I: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr, ACC: tl.constexpr):
    """The forward tile of steps t0 + rows (the first ``n`` of them valid) of batch row b: its
    time indices t [BT, 1], mask, and the linear-scan operands f (effective) and u, with f = 1 and
    u = 0 on masked-off entries so that they carry the memory unchanged."""
    t = (t0 + rows)[:, None]
    msk = (rows < n)[:, None] & lanes[None, :]
    _z, _fs, f, _i, _m, u = _gates(Z + b * szb + t * szt + offs[None, :], F + b * sfb + t * sft + offs[None, :],
                                   I + b * sib + t * sit + offs[None, :], M + b * smb + t * smt + offs[None, :],
                                   msk, HAS_I, HAS_MASK, ACTIVATE, ACC)
    return t, msk, tl.where(msk, f, 1.0), tl.where(msk, u, 0.0)


@triton.jit
def fwd_summary_kernel(
    Z, F, I, M, A_OUT, B_OUT,
    T, B, H, CHUNK,
    szt, szb, sft, sfb, sit, sib, smt, smb,
    HAS_I: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr, ACC: tl.constexpr,
    BLOCK: tl.constexpr, BT: tl.constexpr,
):
    """Per chunk and channel: A = ∏ f_t and b = the chunk's memory from a zero start."""
    offs, lanes, b, k, t0, t1 = _chunk_block(T, H, CHUNK, BLOCK)
    n = t1 - t0
    rows = tl.arange(0, BT)
    a = tl.full([BLOCK], 1.0, ACC)
    s = tl.zeros([BLOCK], ACC)
    for r0 in range(0, n, BT):
        t, msk, f, u = _scan_tile(Z, F, I, M, b, t0 + r0, n - r0, rows, offs, lanes, szt, szb, sft, sfb, sit, sib,
                                  smt, smb, HAS_I, HAS_MASK, ACTIVATE, ACC)
        fa, ua = tl.associative_scan((f, u), 0, _first_order)
        fl = row(fa, rows, BT - 1)
        a = a * fl
        s = fl * s + row(ua, rows, BT - 1)
    out = (k * B + b) * H + offs
    tl.store(A_OUT + out, a, mask=lanes)
    tl.store(B_OUT + out, s, mask=lanes)


@triton.jit
def fwd_kernel(
    Z, F, I, O, M, C0, A_SUM, B_SUM, C, HOUT,
    T, B, H, CHUNK, N_CHUNKS,
    szt, szb, sft, sfb, sit, sib, sot, sob, smt, smb, sct, scb, sht, shb,
    HAS_I: tl.constexpr, HAS_O: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr,
    HAS_CARRY: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr, BT: tl.constexpr, CT: tl.constexpr,
):
    """The forward recurrence over one chunk (all of time when there is one chunk): c and h."""
    offs, lanes, b, k, t0, t1 = _chunk_block(T, H, CHUNK, BLOCK)
    n = t1 - t0
    c = tl.load(C0 + b * H + offs, mask=lanes, other=0.0).to(ACC)
    if HAS_CARRY:
        c = _carry_in(A_SUM, B_SUM, c, k, N_CHUNKS, B, b, H, offs, lanes, False, CT)
    rows = tl.arange(0, BT)
    for r0 in range(0, n, BT):
        t, msk, f, u = _scan_tile(Z, F, I, M, b, t0 + r0, n - r0, rows, offs, lanes, szt, szb, sft, sfb, sit, sib,
                                  smt, smb, HAS_I, HAS_MASK, ACTIVATE, ACC)
        o = f  # placeholder when there is no output gate
        if HAS_O:
            o = tl.load(O + b * sob + t * sot + offs[None, :], mask=msk, other=0.0).to(ACC)
            if ACTIVATE:
                o = sigmoid(o)
        fa, ua = tl.associative_scan((f, u), 0, _first_order)
        ct = fa * c[None, :] + ua
        tl.store(C + b * scb + t * sct + offs[None, :], ct.to(C.dtype.element_ty), mask=msk)
        if HAS_O:
            tl.store(HOUT + b * shb + t * sht + offs[None, :], (o * ct).to(HOUT.dtype.element_ty), mask=msk)
        c = row(ct, rows, BT - 1)


@triton.jit
def _upstream(GC, GH, O, gl, t, T, msk, b, offs, sgct, sgcb, sght, sghb, sot, sob,
              HAS_GC: tl.constexpr, HAS_GH: tl.constexpr, HAS_GL: tl.constexpr, HAS_O: tl.constexpr,
              ACTIVATE: tl.constexpr, ACC: tl.constexpr, BT: tl.constexpr, BLOCK: tl.constexpr):
    """Tiles g_t = ∂L/∂c_t + o_t ⊙ ∂L/∂h_t (+ ∂L/∂c_T at the last step), o and ∂L/∂h."""
    g = tl.zeros([BT, BLOCK], ACC)
    if HAS_GC:
        g += tl.load(GC + b * sgcb + t * sgct + offs[None, :], mask=msk, other=0.0).to(ACC)
    if HAS_GL:
        g += tl.where(t == T - 1, gl[None, :], 0.0)
    o = tl.zeros([BT, BLOCK], ACC)
    gh = tl.zeros([BT, BLOCK], ACC)  # no gradient for h: its term (and do) is zero
    if HAS_O:
        o = tl.load(O + b * sob + t * sot + offs[None, :], mask=msk, other=0.0).to(ACC)
        if ACTIVATE:
            o = sigmoid(o)
        if HAS_GH:
            gh = tl.load(GH + b * sghb + t * sght + offs[None, :], mask=msk, other=0.0).to(ACC)
            g += gh * o
    return g, o, gh


@triton.jit
def bwd_summary_kernel(
    F, O, M, GC, GH, GL, A_OUT, B_OUT,
    T, B, H, CHUNK,
    sft, sfb, sot, sob, smt, smb, sgct, sgcb, sght, sghb,
    HAS_O: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr,
    HAS_GC: tl.constexpr, HAS_GH: tl.constexpr, HAS_GL: tl.constexpr, ACC: tl.constexpr,
    BLOCK: tl.constexpr, BT: tl.constexpr,
):
    """Per chunk, in reverse: A = ∏ f_t and b = f_{t0} ⊙ G_{t0} from a zero carry-in, with
    D_t = f_t ⊙ G_t = f_t ⊙ D_{t+1} + f_t ⊙ g_t scanned from the chunk's end."""
    offs, lanes, b, k, t0, t1 = _chunk_block(T, H, CHUNK, BLOCK)
    gl = tl.zeros([BLOCK], ACC)
    if HAS_GL:
        gl = tl.load(GL + b * H + offs, mask=lanes, other=0.0).to(ACC)
    rows = tl.arange(0, BT)
    a = tl.full([BLOCK], 1.0, ACC)
    d = tl.zeros([BLOCK], ACC)
    for s0 in range(0, t1 - t0, BT):
        t = (t1 - s0 - BT + rows)[:, None]  # the tile's steps in time order, aligned at its end
        msk = (t >= t0) & lanes[None, :]
        g, _o, _gh = _upstream(GC, GH, O, gl, t, T, msk, b, offs, sgct, sgcb, sght, sghb, sot, sob,
                               HAS_GC, HAS_GH, HAS_GL, HAS_O, ACTIVATE, ACC, BT, BLOCK)
        f = _forget(F + b * sfb + t * sft + offs[None, :], M + b * smb + t * smt + offs[None, :], msk,
                    HAS_MASK, ACTIVATE, ACC)
        f = tl.where(msk, f, 1.0)
        fa, da = tl.associative_scan((f, tl.where(msk, f * g, 0.0)), 0, _first_order, reverse=True)
        f0 = row(fa, rows, 0)
        a = a * f0
        d = f0 * d + row(da, rows, 0)
    out = (k * B + b) * H + offs
    tl.store(A_OUT + out, a, mask=lanes)
    tl.store(B_OUT + out, d, mask=lanes)


@triton.jit
def bwd_kernel(
    Z, F, I, O, M, C0, C, GC, GH, GL, A_SUM, B_SUM, DZ, DF, DI, DO, DC0,
    T, B, H, CHUNK, N_CHUNKS,
    szt, szb, sft, sfb, sit, sib, sot, sob, smt, smb, sct, scb, sgct, sgcb, sght, sghb,
    sdzt, sdzb, sdft, sdfb, sdit, sdib, sdot, sdob,
    HAS_I: tl.constexpr, HAS_O: tl.constexpr, HAS_MASK: tl.constexpr, ACTIVATE: tl.constexpr,
    HAS_GC: tl.constexpr, HAS_GH: tl.constexpr, HAS_GL: tl.constexpr, HAS_CARRY: tl.constexpr,
    ACC: tl.constexpr, BLOCK: tl.constexpr, BT: tl.constexpr, CT: tl.constexpr,
):
    """Reverse-time recurrence over one chunk; gradients of the (pre-activation) inputs.

    Within a tile, G_t = ∂L/∂c_t = g_t + f_{t+1} ⊙ G_{t+1} is a reverse scan of (f_{t+1}, g_t),
    with f_{t+1} loaded one step later (the tile's last row takes the carry d = f ⊙ G instead).
    """
    offs, lanes, b, k, t0, t1 = _chunk_block(T, H, CHUNK, BLOCK)
    d = tl.zeros([BLOCK], ACC)  # f_{t+1} ⊙ G_{t+1}, the gradient flowing in from the right
    if HAS_CARRY:
        d = _carry_in(A_SUM, B_SUM, d, k, N_CHUNKS, B, b, H, offs, lanes, True, CT)
    gl = tl.zeros([BLOCK], ACC)
    if HAS_GL:
        gl = tl.load(GL + b * H + offs, mask=lanes, other=0.0).to(ACC)
    c0 = tl.load(C0 + b * H + offs, mask=lanes, other=0.0).to(ACC)
    rows = tl.arange(0, BT)
    for s0 in range(0, t1 - t0, BT):
        top = t1 - s0 - BT
        t = (top + rows)[:, None]
        msk = (t >= t0) & lanes[None, :]
        z, fs, f, i, m, u = _gates(Z + b * szb + t * szt + offs[None, :], F + b * sfb + t * sft + offs[None, :],
                                   I + b * sib + t * sit + offs[None, :], M + b * smb + t * smt + offs[None, :],
                                   msk, HAS_I, HAS_MASK, ACTIVATE, ACC)
        g, o, gh = _upstream(GC, GH, O, gl, t, T, msk, b, offs, sgct, sgcb, sght, sghb, sot, sob,
                             HAS_GC, HAS_GH, HAS_GL, HAS_O, ACTIVATE, ACC, BT, BLOCK)
        nxt = msk & (rows < BT - 1)[:, None]  # f_{t+1} inside this tile
        fn = _forget(F + b * sfb + (t + 1) * sft + offs[None, :], M + b * smb + (t + 1) * smt + offs[None, :],
                     nxt, HAS_MASK, ACTIVATE, ACC)
        fn = tl.where(nxt, fn, 1.0)
        cur = tl.load(C + b * scb + t * sct + offs[None, :], mask=msk, other=0.0).to(ACC)
        prev = tl.load(C + b * scb + (t - 1) * sct + offs[None, :], mask=msk & (t > 0), other=0.0).to(ACC)
        prev = tl.where(t > 0, prev, c0[None, :])  # c_{t-1}
        gin = tl.where(msk, g, 0.0) + tl.where(rows[:, None] == BT - 1, d[None, :], 0.0)
        _fa, G = tl.associative_scan((fn, gin), 0, _first_order, reverse=True)  # ∂L/∂c_t
        if HAS_O:
            d_o = gh * cur
            if ACTIVATE:
                d_o = d_o * o * (1.0 - o)
            tl.store(DO + b * sdob + t * sdot + offs[None, :], d_o.to(DO.dtype.element_ty), mask=msk)
        if HAS_I:
            Gu = G
            if HAS_MASK:
                Gu = G * m
            dz = Gu * i
            df = G * prev
            di = Gu * z
            if ACTIVATE:
                di = di * i * (1.0 - i)
            tl.store(DI + b * sdib + t * sdit + offs[None, :], di.to(DI.dtype.element_ty), mask=msk)
        else:
            dz = G * (1.0 - f)
            df = G * (prev - z)
        if HAS_MASK:
            df = df * m
        if ACTIVATE:
            dz = dz * (1.0 - z * z)
            df = df * fs * (1.0 - fs)
        tl.store(DZ + b * sdzb + t * sdzt + offs[None, :], dz.to(DZ.dtype.element_ty), mask=msk)
        tl.store(DF + b * sdfb + t * sdft + offs[None, :], df.to(DF.dtype.element_ty), mask=msk)
        d = row(f * G, rows, tl.maximum(t0 - top, 0))  # f ⊙ G at the tile's first valid step
    if k == 0:
        tl.store(DC0 + b * H + offs, d.to(DC0.dtype.element_ty), mask=lanes)
