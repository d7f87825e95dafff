"""Triton SRU kernels: the SRU recurrence on GPUs (and on the CPU under ``TRITON_INTERPRET=1``).

Same contract as :func:`.torch_kernel.sru_forward` / ``sru_backward`` and the numba kernel of
:mod:`.cpu_kernel`, for float32, float64, float16 and bfloat16 inputs (accumulated in float32,
float64 for float64). Per time step and channel (Lei et al. 2017, arXiv 1709.02755, §2, with the
element-wise recurrent terms of the published version)::

    f_t = σ(F_t + v_f ⊙ c_{t−1} + b_f)      r_t = σ(R_t + v_r ⊙ c_{t−1} + b_r)
    c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ x̃_t    h_t = r_t ⊙ g(c_t) + (1 − r_t) ⊙ x_t

f_t reads c_{t−1}, so the recurrence is not a linear scan: each channel walks time sequentially.
For memory parallelism a program loads ``[BT, BLOCK]`` tiles (BT steps of BLOCK channels of one
batch row) of every operand at once, walks the tile's steps in registers, and then computes
r and h (and in the backward, every gradient but the recurrence itself) for the whole tile.
The backward pass walks time in reverse with
``G_t = ∂L/∂c_t = total_t + a_{t+1} ⊙ G_{t+1} + v_r ⊙ dR_{t+1}``, ``a = f + (c_{t−1} − x̃) f(1 − f) v_f``.
Variable lengths are not part of the ``quasirnn::sru_recurrence`` op, so there are none here.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..triton_runtime import AVAILABLE, acc_dtype, acc_type, check_device, strides

if AVAILABLE:
    import triton
    import triton.language as tl

    from ..triton_runtime import row, sigmoid, tanh

    @triton.jit
    def _channel_block(V, BIAS, C0, H, ACC: tl.constexpr, BLOCK: tl.constexpr):
        """This program's BLOCK channels (offsets and in-range mask) of batch row b, with their
        recurrent weights and biases v_f, v_r, b_f, b_r and initial memory c0[b], in ACC."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        lanes = offs < H
        b = tl.program_id(1).to(tl.int64)
        vf = tl.load(V + offs, mask=lanes, other=0.0).to(ACC)
        vr = tl.load(V + H + offs, mask=lanes, other=0.0).to(ACC)
        bf = tl.load(BIAS + offs, mask=lanes, other=0.0).to(ACC)
        br = tl.load(BIAS + H + offs, mask=lanes, other=0.0).to(ACC)
        c0 = tl.load(C0 + b * H + offs, mask=lanes, other=0.0).to(ACC)
        return offs, lanes, b, vf, vr, bf, br, c0

    @triton.jit
    def sru_fwd_kernel(
        XT, F, R, XH, V, BIAS, C0, HOUT, C,
        T, B, H,
        sxt, sxb, sft, sfb, srt, srb, sht, shb, sot, sob, sct, scb,
        USE_TANH: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr, BT: tl.constexpr,
    ):
        """One batch row's BLOCK channels over all of time: c and h."""
        offs, lanes, b, vf, vr, bf, br, c = _channel_block(V, BIAS, C0, H, ACC, BLOCK)
        rows = tl.arange(0, BT)
        for t0 in range(0, T, BT):
            t = (t0 + rows)[:, None]
            msk = (t < T) & lanes[None, :]
            xt = tl.load(XT + b * sxb + t * sxt + offs[None, :], mask=msk, other=0.0).to(ACC)
            fp = tl.load(F + b * sfb + t * sft + offs[None, :], mask=msk, other=0.0).to(ACC) + bf[None, :]
            rp = tl.load(R + b * srb + t * srt + offs[None, :], mask=msk, other=0.0).to(ACC) + br[None, :]
            xh = tl.load(XH + b * shb + t * sht + offs[None, :], mask=msk, other=0.0).to(ACC)
            prev = tl.zeros([BT, BLOCK], ACC)
            ct = tl.zeros([BT, BLOCK], ACC)
            for r in tl.static_range(BT):
                sel = rows[:, None] == r
                prev = tl.where(sel, c[None, :], prev)
                f = sigmoid(row(fp, rows, r) + vf * c)
                c = tl.where(t0 + r < T, f * c + (1.0 - f) * row(xt, rows, r), c)
                ct = tl.where(sel, c[None, :], ct)
            rr = sigmoid(rp + vr[None, :] * prev)
            g = ct
            if USE_TANH:
                g = tanh(ct)
            tl.store(C + b * scb + t * sct + offs[None, :], ct.to(C.dtype.element_ty), mask=msk)
            tl.store(HOUT + b * sob + t * sot + offs[None, :], (rr * g + (1.0 - rr) * xh).to(HOUT.dtype.element_ty),
                     mask=msk)

    @triton.jit
    def sru_bwd_kernel(
        XT, F, R, XH, V, BIAS, C0, C, GH, GC, GL, DXT, DF, DR, DXH, DC0, PART,
        T, B, H,
        sxt, sxb, sft, sfb, srt, srb, sht, shb, sct, scb, sght, sghb, sgct, sgcb,
        sdxt, sdxb, sdft, sdfb, sdrt, sdrb, sdht, sdhb,
        USE_TANH: tl.constexpr, HAS_GH: tl.constexpr, HAS_GC: tl.constexpr, HAS_GL: tl.constexpr,
        HAS_DXH: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr, BT: tl.constexpr,
    ):
        """Reverse time for one batch row's BLOCK channels; dv, db summed into PART (4, B, H)."""
        offs, lanes, b, vf, vr, bf, br, c0 = _channel_block(V, BIAS, C0, H, ACC, BLOCK)
        gl = tl.zeros([BLOCK], ACC)
        if HAS_GL:
            gl = tl.load(GL + b * H + offs, mask=lanes, other=0.0).to(ACC)
        d = tl.zeros([BLOCK], ACC)  # a_{t+1} ⊙ G_{t+1} + v_r ⊙ dR_{t+1}
        dvf = tl.zeros([BLOCK], ACC)
        dvr = tl.zeros([BLOCK], ACC)
        dbf = tl.zeros([BLOCK], ACC)
        dbr = tl.zeros([BLOCK], ACC)
        rows = tl.arange(0, BT)
        for s0 in range(0, T, BT):
            top = T - s0 - BT
            t = (top + rows)[:, None]
            msk = (t >= 0) & lanes[None, :]
            xt = tl.load(XT + b * sxb + t * sxt + offs[None, :], mask=msk, other=0.0).to(ACC)
            fp = tl.load(F + b * sfb + t * sft + offs[None, :], mask=msk, other=0.0).to(ACC)
            rp = tl.load(R + b * srb + t * srt + offs[None, :], mask=msk, other=0.0).to(ACC)
            xh = tl.load(XH + b * shb + t * sht + offs[None, :], mask=msk, other=0.0).to(ACC)
            cur = tl.load(C + b * scb + t * sct + offs[None, :], mask=msk, other=0.0).to(ACC)
            prev = tl.load(C + b * scb + (t - 1) * sct + offs[None, :], mask=msk & (t > 0), other=0.0).to(ACC)
            prev = tl.where(t > 0, prev, c0[None, :])
            gh = tl.zeros([BT, BLOCK], ACC)
            if HAS_GH:
                gh = tl.load(GH + b * sghb + t * sght + offs[None, :], mask=msk, other=0.0).to(ACC)
            f = sigmoid(fp + bf[None, :] + vf[None, :] * prev)
            rr = sigmoid(rp + br[None, :] + vr[None, :] * prev)
            g = cur
            total = gh * rr
            if USE_TANH:
                g = tanh(cur)
                total = total * (1.0 - g * g)
            if HAS_GC:
                total += tl.load(GC + b * sgcb + t * sgct + offs[None, :], mask=msk, other=0.0).to(ACC)
            if HAS_GL:
                total += tl.where(t == T - 1, gl[None, :], 0.0)
            dr = gh * (g - xh) * rr * (1.0 - rr)
            dfdc = (prev - xt) * f * (1.0 - f)
            a = f + dfdc * vf[None, :]
            dvr_t = dr * vr[None, :]
            G = tl.zeros([BT, BLOCK], ACC)
            for q in tl.static_range(BT):
                r = BT - 1 - q
                gr = row(total, rows, r) + d
                G = tl.where(rows[:, None] == r, gr[None, :], G)
                d = tl.where(top + r >= 0, row(a, rows, r) * gr + row(dvr_t, rows, r), d)
            df = tl.where(msk, G * dfdc, 0.0)
            dr = tl.where(msk, dr, 0.0)
            tl.store(DXT + b * sdxb + t * sdxt + offs[None, :], (G * (1.0 - f)).to(DXT.dtype.element_ty), mask=msk)
            tl.store(DF + b * sdfb + t * sdft + offs[None, :], df.to(DF.dtype.element_ty), mask=msk)
            tl.store(DR + b * sdrb + t * sdrt + offs[None, :], dr.to(DR.dtype.element_ty), mask=msk)
            if HAS_DXH:
                tl.store(DXH + b * sdhb + t * sdht + offs[None, :], (gh * (1.0 - rr)).to(DXH.dtype.element_ty),
                         mask=msk)
            dvf += tl.sum(df * prev, 0)
            dvr += tl.sum(dr * prev, 0)
            dbf += tl.sum(df, 0)
            dbr += tl.sum(dr, 0)
        tl.store(DC0 + b * H + offs, d.to(DC0.dtype.element_ty), mask=lanes)
        part = PART + b * H + offs
        tl.store(part, dvf, mask=lanes)
        tl.store(part + B * H, dvr, mask=lanes)
        tl.store(part + 2 * B * H, dbf, mask=lanes)
        tl.store(part + 3 * B * H, dbr, mask=lanes)


#: Time steps per tile and channels per program (one warp: SRU has no time split, so programs
#: are kept small to have many of them).
BT = 8


def _block(H: int) -> int:
    return 16 if H <= 16 else 32


def sru_forward(
    xt: Tensor, f: Tensor, r: Tensor, xh: Tensor, v: Tensor, b: Tensor, c0: Tensor, use_tanh: bool
) -> tuple[Tensor, Tensor]:
    """SRU forward recurrence. Shapes: xt (x̃), f, r (pre-activations), xh (highway input)
    (T, B, H) with a contiguous last dimension; v, b (2, H); c0 (B, H).

    Returns ``(h, c)``, both (T, B, H) in the dtype of ``xt``.

    Raises:
        RuntimeError: triton missing, or CPU tensors outside the Triton interpreter.
    """
    check_device(xt)
    T, B, H = xt.shape
    h = torch.empty((T, B, H), dtype=xt.dtype, device=xt.device)
    c = torch.empty_like(h)
    if T == 0 or B == 0 or H == 0:
        return h, c
    block = _block(H)
    sru_fwd_kernel[(triton.cdiv(H, block), B)](
        xt, f, r, xh, v.contiguous(), b.contiguous(), c0.contiguous(), h, c, T, B, H,
        *strides(xt), *strides(f), *strides(r), *strides(xh), *strides(h), *strides(c),
        USE_TANH=bool(use_tanh), ACC=acc_type(xt.dtype), BLOCK=block, BT=BT, num_warps=1,
    )
    return h, c


def sru_backward(
    grad_h: Optional[Tensor], grad_c: Optional[Tensor], grad_last: Optional[Tensor],
    xt: Tensor, f: Tensor, r: Tensor, xh: Tensor, v: Tensor, b: Tensor, c0: Tensor, c: Tensor,
    use_tanh: bool, out: Optional[tuple] = None,
) -> tuple:
    """Reverse-time recurrence for the SRU gradients (same contract as the torch kernel's).

    Args mirror :func:`sru_forward`, plus the upstream gradients ``grad_h``/``grad_c`` (T, B, H)
    and ``grad_last`` (B, H), each possibly None, and the forward's ``c``. ``out`` =
    (dx̃, dF, dR, dx) tensors or views with a contiguous last dimension to write into (dx may be
    None: not computed).

    Returns:
        ``(dx̃, dF, dR, dx, dc0, dv, db)``; dF, dR with respect to the pre-activations; dv, db
        (2, H) summed over time and batch.
    """
    check_device(xt)
    T, B, H = xt.shape
    if out is None:
        out = tuple(torch.empty((T, B, H), dtype=xt.dtype, device=xt.device) for _ in range(4))
    dxt, df, dr, dxh = out
    dc0 = torch.zeros((B, H), dtype=c0.dtype, device=xt.device)
    part = torch.zeros((4, B, H), dtype=acc_dtype(xt.dtype), device=xt.device)
    if T and B and H:
        block = _block(H)
        dummy = xt
        gh, gc, gl = (dummy if x is None else x for x in (grad_h, grad_c, grad_last))
        sru_bwd_kernel[(triton.cdiv(H, block), B)](
            xt, f, r, xh, v.contiguous(), b.contiguous(), c0.contiguous(), c, gh, gc, gl.contiguous(),
            dxt, df, dr, dummy if dxh is None else dxh, dc0, part, T, B, H,
            *strides(xt), *strides(f), *strides(r), *strides(xh), *strides(c), *strides(grad_h), *strides(grad_c),
            *strides(dxt), *strides(df), *strides(dr), *strides(dxh),
            USE_TANH=bool(use_tanh), HAS_GH=grad_h is not None, HAS_GC=grad_c is not None,
            HAS_GL=grad_last is not None, HAS_DXH=dxh is not None, ACC=acc_type(xt.dtype), BLOCK=block, BT=BT,
            num_warps=1,
        )
    sums = part.sum(1)
    return dxt, df, dr, dxh, dc0, sums[:2].to(v.dtype, copy=True), sums[2:].to(b.dtype, copy=True)
