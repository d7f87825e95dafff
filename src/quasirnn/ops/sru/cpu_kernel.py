"""The SRU recurrence on the CPU with numba, forward and backward (Lei et al. 2017, arXiv
1709.02755, §2, with the element-wise recurrent terms of the published version)::

    f_t = σ(F_t + v_f ⊙ c_{t−1} + b_f)
    r_t = σ(R_t + v_r ⊙ c_{t−1} + b_r)
    c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ x̃_t
    h_t = r_t ⊙ g(c_t) + (1 − r_t) ⊙ x_t          g = identity, or tanh with use_tanh

x̃, F, R (projection outputs) and x (the highway input) are (T, B, H) operands with a contiguous
last dimension (they may be slices of one projection tensor); v = [v_f; v_r] and b = [b_f; b_r]
are contiguous (2, H). The backward pass recomputes f, r and g(c) from the saved c and returns
gradients with respect to x̃, F, R, x (when wanted), c_0, v and b. Work split (the time loop of
:mod:`quasirnn.ops._cpu.time_loop`), dtypes and maths as in the pooling kernel
(``ops/pooling/cpu_kernel.py``); the v and b gradients are per-(b, h) partial sums over t (each
work item owns its batch row, so there are no races), summed over B at the end; they are added
up from the F and R gradients as written (rounded to bfloat16 for bfloat16 inputs), in a loop of
their own so that LLVM vectorises the main one. The maths of :func:`.torch_kernel.sru_forward` /
``sru_backward``; the forward here takes the projection u whole (the four operands at offsets 0,
H, 2H, 3H of one address) and writes c_T.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

import torch
from numba import carray
from torch import Tensor

from .._cpu import runtime as rt
from .._cpu.buffers import fresh
from .._cpu.intrinsics import const, inlined, narrow, pointer, prefetch, sigmoid, span, tanh, wide_vectors, widen
from .._cpu.time_loop import BIG, salt, steps, time_loop_kernel

AHEAD = rt.AHEAD
SALTED = ("AHEAD", "BIG")  # the module constants the steps read
SALT = salt(__file__, *(globals()[name] for name in SALTED))  # in every kernel's closure: see time_loop.salt
FORWARD, BACKWARD = "SRU forward", "SRU backward"


@lru_cache(maxsize=None)
def _forward(use_tanh: bool, dtype: torch.dtype):
    """The forward kernel: operands (marker, c0, c_last, then x̃, F, R, x as (address, offset, time
    stride, batch stride), v, b, c, h), forward in time from c0."""
    return time_loop_kernel(FORWARD, (use_tanh,), False, False, False, SALT, dtype)


@steps(FORWARD)
def _forward_step(use_tanh):
    def step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H):
        (mk, _, _, xt_p, xt_o, xt_t, xt_b, f_p, f_o, f_t, f_b, r_p, r_o, r_t, r_b, xh_p, xh_o, xh_t, xh_b,
         v_p, bias_p, c_p, h_p) = operands
        # tensors arrive as data_ptr() addresses; views of them, of unbounded length
        xt = carray(pointer(xt_p, mk), BIG)
        f = carray(pointer(f_p, mk), BIG)
        r = carray(pointer(r_p, mk), BIG)
        xh = carray(pointer(xh_p, mk), BIG)
        v = carray(pointer(v_p, mk), BIG)
        bias = carray(pointer(bias_p, mk), BIG)
        c = carray(pointer(c_p, mk), BIG)
        h = carray(pointer(h_p, mk), BIG)
        inlined()
        wide_vectors()
        one = const(c, 1.0)
        xtb = xt_o + t * xt_t + b * xt_b + h0
        fb = f_o + t * f_t + b * f_b + h0
        rb = r_o + t * r_t + b * r_b + h0
        xhb = xh_o + t * xh_t + b * xh_b + h0
        cb = (t * B + b) * H + h0
        if t + AHEAD < T:  # the same block AHEAD steps later
            prefetch(xt, xtb + AHEAD * xt_t, ln)
            prefetch(f, fb + AHEAD * f_t, ln)
            prefetch(r, rb + AHEAD * r_t, ln)
            prefetch(xh, xhb + AHEAD * xh_t, ln)
        xtv = span(xt, xtb, ln)
        fv = span(f, fb, ln)
        rv = span(r, rb, ln)
        xhv = span(xh, xhb, ln)
        vfv = span(v, h0, ln)
        vrv = span(v, H + h0, ln)
        bfv = span(bias, h0, ln)
        brv = span(bias, H + h0, ln)
        cv = span(c, cb, ln)
        hv = span(h, cb, ln)
        kv = span(carry, kb, ln)
        for j in range(ln):
            p = kv[j]
            ff = sigmoid(widen(fv[j]) + widen(vfv[j]) * p + widen(bfv[j]))
            rr = sigmoid(widen(rv[j]) + widen(vrv[j]) * p + widen(brv[j]))
            cc = ff * p + (one - ff) * widen(xtv[j])
            gc = tanh(cc) if use_tanh else cc
            kv[j] = cc
            cv[j] = narrow(cc, cv.dtype)
            hv[j] = narrow(rr * gc + (one - rr) * widen(xhv[j]), hv.dtype)

    return step


@lru_cache(maxsize=None)
def _backward(use_tanh: bool, has_gc: bool, has_last: bool, has_dx: bool, dtype: torch.dtype):
    """The backward kernel: operands (marker, dL/dc_T, dc0, the marker of the partial sums, then
    grad_h, grad_c, x̃, F, R, x as (address, offset, time stride, batch stride), v, b, c0, c, dx̃,
    dF, dR, dx likewise, the partial sums), backward in time, the carry dL/dc_t from step t+1
    starting from dL/dc_T (zero without it)."""
    return time_loop_kernel(BACKWARD, (use_tanh, has_gc, has_dx), True, not has_last, False, SALT, dtype)


@steps(BACKWARD)
def _backward_step(use_tanh, has_gc, has_dx):
    def step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H):
        (mk, _, _, mka, gh_p, gh_o, gh_t, gh_b, gc_p, gc_o, gc_t, gc_b, xt_p, xt_o, xt_t, xt_b, f_p, f_o, f_t, f_b,
         r_p, r_o, r_t, r_b, xh_p, xh_o, xh_t, xh_b, v_p, bias_p, c0_p, c_p, dxt_p, dxt_o, dxt_t, dxt_b,
         df_p, df_o, df_t, df_b, dr_p, dr_o, dr_t, dr_b, dxh_p, dxh_o, dxh_t, dxh_b, dparams_p) = operands
        # tensors arrive as data_ptr() addresses; views of them, of unbounded length
        gh = carray(pointer(gh_p, mk), BIG)
        gc = carray(pointer(gc_p, mk), BIG)
        xt = carray(pointer(xt_p, mk), BIG)
        f = carray(pointer(f_p, mk), BIG)
        r = carray(pointer(r_p, mk), BIG)
        xh = carray(pointer(xh_p, mk), BIG)
        v = carray(pointer(v_p, mk), BIG)
        bias = carray(pointer(bias_p, mk), BIG)
        c0 = carray(pointer(c0_p, mk), BIG)
        c = carray(pointer(c_p, mk), BIG)
        dxt = carray(pointer(dxt_p, mk), BIG)
        df = carray(pointer(df_p, mk), BIG)
        dr = carray(pointer(dr_p, mk), BIG)
        dxh = carray(pointer(dxh_p, mk), BIG)
        dparams = carray(pointer(dparams_p, mka), BIG)  # (4, B, H) zeros on entry: sums over t of dv_f, dv_r, db_f, db_r
        inlined()
        wide_vectors()
        one = const(c, 1.0)
        BH = B * H
        ghb = gh_o + t * gh_t + b * gh_b + h0
        gcb = gc_o + t * gc_t + b * gc_b + h0
        xtb = xt_o + t * xt_t + b * xt_b + h0
        fb = f_o + t * f_t + b * f_b + h0
        rb = r_o + t * r_t + b * r_b + h0
        xhb = xh_o + t * xh_t + b * xh_b + h0
        dxtb = dxt_o + t * dxt_t + b * dxt_b + h0
        dfb = df_o + t * df_t + b * df_b + h0
        drb = dr_o + t * dr_t + b * dr_b + h0
        dxhb = dxh_o + t * dxh_t + b * dxh_b + h0
        cb = (t * B + b) * H + h0
        pb = cb - BH
        p0 = b * H + h0
        if t >= AHEAD:  # the same block AHEAD steps earlier, the backward's next ones
            prefetch(gh, ghb - AHEAD * gh_t, ln)
            prefetch(xt, xtb - AHEAD * xt_t, ln)
            prefetch(f, fb - AHEAD * f_t, ln)
            prefetch(r, rb - AHEAD * r_t, ln)
            prefetch(xh, xhb - AHEAD * xh_t, ln)
            prefetch(c, cb - AHEAD * BH, ln)  # c_{t-AHEAD}: read at that step and the one after
            if has_gc:
                prefetch(gc, gcb - AHEAD * gc_t, ln)
        ghv = span(gh, ghb, ln)
        gcv = span(gc, gcb, ln)
        xtv = span(xt, xtb, ln)
        fv = span(f, fb, ln)
        rv = span(r, rb, ln)
        xhv = span(xh, xhb, ln)
        vfv = span(v, h0, ln)
        vrv = span(v, H + h0, ln)
        bfv = span(bias, h0, ln)
        brv = span(bias, H + h0, ln)
        cv = span(c, cb, ln)
        pv = span(c, pb, ln) if t > 0 else span(c0, p0, ln)
        dxtv = span(dxt, dxtb, ln)
        dfv = span(df, dfb, ln)
        drv = span(dr, drb, ln)
        dxhv = span(dxh, dxhb, ln)
        dvf = span(dparams, p0, ln)
        dvr = span(dparams, BH + p0, ln)
        dbf = span(dparams, 2 * BH + p0, ln)
        dbr = span(dparams, 3 * BH + p0, ln)
        kv = span(carry, kb, ln)
        for j in range(ln):
            p = widen(pv[j])
            vf = widen(vfv[j])
            vr = widen(vrv[j])
            ff = sigmoid(widen(fv[j]) + vf * p + widen(bfv[j]))
            rr = sigmoid(widen(rv[j]) + vr * p + widen(brv[j]))
            cc = widen(cv[j])
            gcc = tanh(cc) if use_tanh else cc
            g_h = widen(ghv[j])
            x_h = widen(xhv[j])
            # dL/dc_t: from step t+1, from c_t's own use, and through h_t
            g = kv[j]
            if has_gc:
                g += widen(gcv[j])
            g += g_h * rr * (one - gcc * gcc) if use_tanh else g_h * rr
            gr = g_h * (gcc - x_h) * rr * (one - rr)  # pre-activation of r
            gf = g * (p - widen(xtv[j])) * ff * (one - ff)  # pre-activation of f
            if has_dx:
                dxhv[j] = narrow(g_h * (one - rr), dxhv.dtype)
            dxtv[j] = narrow(g * (one - ff), dxtv.dtype)
            dfv[j] = narrow(gf, dfv.dtype)
            drv[j] = narrow(gr, drv.dtype)
            kv[j] = g * ff + gf * vf + gr * vr
        # the partial sums of dv and db, from the gradients just written (a loop of its own:
        # four more arrays updated in the loop above keep LLVM from vectorising it)
        for j in range(ln):
            p = widen(pv[j])
            gf = widen(dfv[j])
            gr = widen(drv[j])
            dvf[j] += gf * p
            dvr[j] += gr * p
            dbf[j] += gf
            dbr[j] += gr

    return step


def sru_forward(u: Tensor, x: Optional[Tensor], v: Tensor, b: Tensor, c0: Tensor,
                use_tanh: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Forward recurrence of the projection ``u`` with a contiguous last dimension, (T, B, 3H)
    = [x̃, F, R] with the highway ``x`` (T, B, H), or (T, B, 4H) = [x̃, F, R, x] with ``x``
    None; v, b (2, H), c0 (B, H). Returns ``(h, c, c_last)``: h and c (T, B, H) and the final
    memory c_T (B, H), in the dtype of ``u``. The kernel reads the slices of ``u`` at offsets
    0, H, 2H, 3H, without views of them (this runs on every decoding step)."""
    T, B, _ = u.shape
    H = v.shape[1]
    dtype = u.dtype
    c = fresh((T, B, H), dtype)
    h = fresh((T, B, H), dtype)
    c_last = torch.empty(B, H, dtype=dtype)
    op = rt.operands(dtype)
    v, b, c0 = v.contiguous(), b.contiguous(), c0.contiguous()  # kept alive by the names while the kernel runs
    # the slices at 0, H, 2H, 3H, in the order (Z, F, I, O) = offsets (0, H, 3H, 2H) of the QRNN's gates
    xt, f, xh, r = rt.gate_operands(u, 3 if x is not None else 4)
    args = (op.marker, c0.data_ptr(), c_last.data_ptr(), *xt, *f, *r, *(op(x) if x is not None else xh),
            v.data_ptr(), b.data_ptr(), c.data_ptr(), h.data_ptr())
    rt.run_items(_forward(bool(use_tanh), dtype), args, T, B, H, "SRU forward")
    return h, c, c_last


def sru_backward(grad_h: Tensor, grad_c: Optional[Tensor], grad_last: Optional[Tensor], xt: Tensor, f: Tensor,
                 r: Tensor, xh: Tensor, v: Tensor, b: Tensor, c0: Tensor, c: Tensor, use_tanh: bool,
                 dxt: Tensor, df: Tensor, dr: Tensor, dxh: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Backward recurrence: writes dx̃, dF, dR and (when ``dxh`` is given) dx into the given
    views and returns ``(dc0 (B, H), dv (2, H), db (2, H))``. The partial sums of dv and db are
    kept in float32 (float64 for float64 inputs)."""
    T, B, H = xt.shape
    acc = torch.float64 if xt.dtype == torch.float64 else torch.float32
    dc0 = torch.empty((B, H), dtype=xt.dtype)
    dparams = torch.zeros((4, B, H), dtype=acc)
    last = grad_last.contiguous() if grad_last is not None else None
    fn = _backward(bool(use_tanh), grad_c is not None, last is not None, dxh is not None, xt.dtype)
    op = rt.operands(xt.dtype)
    v, b, c0, c = v.contiguous(), b.contiguous(), c0.contiguous(), c.contiguous()  # alive while the kernel runs
    args = (op.marker, rt.address(last) if last is not None else op.dummy, rt.address(dc0), rt.marker(acc),
            *op(grad_h), *op(grad_c), *op(xt), *op(f), *op(r), *op(xh),
            rt.address(v), rt.address(b), rt.address(c0), rt.address(c),
            *op(dxt), *op(df), *op(dr), *op(dxh), rt.address(dparams))
    rt.run_items(fn, args, T, B, H, "SRU backward")
    sums = dparams.sum(1).to(xt.dtype)  # (4, H): dv_f, dv_r, db_f, db_r
    return dc0, sums[:2].clone(), sums[2:].clone()
