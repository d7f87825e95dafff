"""QRNN pooling on the CPU with numba: forward and backward recurrences (Bradbury et al. 2016,
§2, eq. 3–5)::

    c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ z_t        (f / fo pooling)
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ z_t              (ifo pooling)
    h_t = o_t ⊙ c_t                              (fo / ifo)

With ``activate`` the gate inputs are pre-activations (plus an optional bias of the layer's
convolution, (G·H,), added as they are read: the projection then needs no bias pass of its own)
and the kernel applies tanh (z) and sigmoid (f, o, i) itself, plus the zoneout keep-mask m on
the forget gate, f = 1 − m ⊙ (1 − σ(F)), and for ifo on the input term (m ⊙ i ⊙ z), so a
zoned-out channel keeps its memory exactly in every pooling form. The backward pass
recomputes the activations instead of storing them and returns gradients with respect to the
pre-activations. Upstream gradients may arrive for h (T, B, H), for c at every step (T, B, H)
and for the final memory c_T (B, H).

Layout: every (T, B, H) operand may be a strided view (the Z/F/O/I slices of one gate tensor)
as long as its last dimension is contiguous; c and h are contiguous. The kernels are the one time
loop of :mod:`quasirnn.ops._cpu.time_loop` (blocks of channels of one batch row, split over
threads, time walked outside a group of blocks) around the steps written here, one step of one
block each, whose loop over the block's channels LLVM vectorises. The forward writes a c of
:data:`~quasirnn.ops._cpu.runtime.STREAM_FROM` bytes or more (float32/float64) from its carry
with non-temporal stores (:func:`~quasirnn.ops._cpu.intrinsics.stream`): at (512, 32, 512)
forget_mult went from 0.68 to 0.84 of a same-bytes copy on an AMD EPYC, whose plain stores read
every line first. float32, float64 and bfloat16 (read and written as bfloat16, accumulated in
float32). Contract as the pure-PyTorch kernel :func:`.torch_kernel.pool_forward` /
``pool_backward``, against which the tests compare it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

import torch
from numba import carray
from torch import Tensor

from .._cpu import runtime as rt
from .._cpu.buffers import fresh
from .._cpu.intrinsics import (const, inlined, narrow, pointer, prefetch, prefetch_write, sigmoid, span, stream,
                               tanh, wide_vectors, widen)
from .._cpu.time_loop import BIG, salt, steps, time_loop_kernel

AHEAD = rt.AHEAD
SALTED = ("AHEAD", "BIG")  # the module constants the steps read
SALT = salt(__file__, *(globals()[name] for name in SALTED))  # in every kernel's closure: see time_loop.salt
FORWARD, BACKWARD = "pooling forward", "pooling backward"


@lru_cache(maxsize=None)
def _forward(act: bool, has_i: bool, has_o: bool, has_m: bool, has_b: bool, dtype: torch.dtype, streamed: bool):
    """The forward kernel: operands (marker, c0, c_last, z, f, i, o, m as (address, offset, time
    stride, batch stride), bias, c, h), forward in time from c0, a fence after streamed stores."""
    return time_loop_kernel(FORWARD, (act, has_i, has_o, has_m, has_b, streamed), False, False, streamed, SALT, dtype)


@steps(FORWARD)
def _forward_step(act, has_i, has_o, has_m, has_b, streamed):
    def step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H):
        (mk, _, _, z_p, z_o, z_t, z_b, f_p, f_o, f_t, f_b, i_p, i_o, i_t, i_b, o_p, o_o, o_t, o_b, m_p, m_o, m_t, m_b,
         bs_p, c_p, h_p) = operands
        # tensors arrive as data_ptr() addresses; views of them, of unbounded length
        z = carray(pointer(z_p, mk), BIG)
        f = carray(pointer(f_p, mk), BIG)
        i = carray(pointer(i_p, mk), BIG)
        o = carray(pointer(o_p, mk), BIG)
        m = carray(pointer(m_p, mk), BIG)
        bs = carray(pointer(bs_p, mk), BIG)  # the gate bias (G·H), order Z, F, O, I
        c = carray(pointer(c_p, mk), BIG)
        h = carray(pointer(h_p, mk), BIG)
        inlined()
        wide_vectors()
        one = const(c, 1.0)
        zb = z_o + t * z_t + b * z_b + h0
        fb = f_o + t * f_t + b * f_b + h0
        ib = i_o + t * i_t + b * i_b + h0
        ob = o_o + t * o_t + b * o_b + h0
        mb = m_o + t * m_t + b * m_b + h0
        cb = (t * B + b) * H + h0
        if t + AHEAD < T:  # the same block AHEAD steps later
            prefetch(z, zb + AHEAD * z_t, ln)
            prefetch(f, fb + AHEAD * f_t, ln)
            if has_i:
                prefetch(i, ib + AHEAD * i_t, ln)
            if has_o:
                prefetch(o, ob + AHEAD * o_t, ln)
                prefetch_write(h, cb + AHEAD * B * H, ln)
            if has_m:
                prefetch(m, mb + AHEAD * m_t, ln)
            if not streamed:
                prefetch_write(c, cb + AHEAD * B * H, ln)
        zv = span(z, zb, ln)
        fv = span(f, fb, ln)
        iv = span(i, ib, ln)
        ov = span(o, ob, ln)
        mv = span(m, mb, ln)
        bzv = span(bs, h0, ln)
        bfv = span(bs, H + h0, ln)
        bov = span(bs, 2 * H + h0, ln)
        biv = span(bs, 3 * H + h0, ln)
        cv = span(c, cb, ln)
        hv = span(h, cb, ln)
        kv = span(carry, kb, ln)
        for j in range(ln):
            zz = widen(zv[j])
            ff = widen(fv[j])
            if has_b:
                zz += widen(bzv[j])
                ff += widen(bfv[j])
            if act:
                zz = tanh(zz)
                ff = sigmoid(ff)
            mm = one
            if has_m:
                mm = widen(mv[j])
                ff = one - mm * (one - ff)
            if has_i:
                ii = widen(iv[j])
                if has_b:
                    ii += widen(biv[j])
                upd = (sigmoid(ii) if act else ii) * zz
                if has_m:
                    upd = upd * mm  # a zoned-out channel takes no input either
            else:
                upd = (one - ff) * zz
            cc = ff * kv[j] + upd
            kv[j] = cc
            if not streamed:
                cv[j] = narrow(cc, cv.dtype)
            if has_o:
                oo = widen(ov[j])
                if has_b:
                    oo += widen(bov[j])
                hv[j] = narrow((sigmoid(oo) if act else oo) * cc, h.dtype)
        if streamed:  # c_t of the block, from the carry, without reading c's cache lines
            stream(c, cb, carry, kb, ln)

    return step


@lru_cache(maxsize=None)
def _backward(act: bool, has_i: bool, has_o: bool, has_m: bool, has_b: bool, has_gc: bool, has_last: bool,
              dtype: torch.dtype):
    """The backward kernel: operands (marker, dL/dc_T, dc0, then grad_h, grad_c, z, f, i, o, m as
    (address, offset, time stride, batch stride), bias, c0, c, dz, df, di, do likewise), backward
    in time, the carry f_{t+1} ⊙ dL/dc_{t+1} starting from dL/dc_T (zero without it)."""
    return time_loop_kernel(BACKWARD, (act, has_i, has_o, has_m, has_b, has_gc), True, not has_last, False, SALT, dtype)


@steps(BACKWARD)
def _backward_step(act, has_i, has_o, has_m, has_b, has_gc):
    def step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H):
        (mk, _, _, gh_p, gh_o, gh_t, gh_b, gc_p, gc_o, gc_t, gc_b, z_p, z_o, z_t, z_b, f_p, f_o, f_t, f_b,
         i_p, i_o, i_t, i_b, o_p, o_o, o_t, o_b, m_p, m_o, m_t, m_b, bs_p, c0_p, c_p, dz_p, dz_o, dz_t, dz_b,
         df_p, df_o, df_t, df_b, di_p, di_o, di_t, di_b, do_p, do_o, do_t, do_b) = operands
        # tensors arrive as data_ptr() addresses; views of them, of unbounded length
        gh = carray(pointer(gh_p, mk), BIG)
        gc = carray(pointer(gc_p, mk), BIG)
        z = carray(pointer(z_p, mk), BIG)
        f = carray(pointer(f_p, mk), BIG)
        i = carray(pointer(i_p, mk), BIG)
        o = carray(pointer(o_p, mk), BIG)
        m = carray(pointer(m_p, mk), BIG)
        bs = carray(pointer(bs_p, mk), BIG)
        c0 = carray(pointer(c0_p, mk), BIG)
        c = carray(pointer(c_p, mk), BIG)
        dz = carray(pointer(dz_p, mk), BIG)
        df = carray(pointer(df_p, mk), BIG)
        di = carray(pointer(di_p, mk), BIG)
        do = carray(pointer(do_p, mk), BIG)
        inlined()
        wide_vectors()
        one = const(c, 1.0)
        zb = z_o + t * z_t + b * z_b + h0
        fb = f_o + t * f_t + b * f_b + h0
        ib = i_o + t * i_t + b * i_b + h0
        ob = o_o + t * o_t + b * o_b + h0
        mb = m_o + t * m_t + b * m_b + h0
        ghb = gh_o + t * gh_t + b * gh_b + h0
        gcb = gc_o + t * gc_t + b * gc_b + h0
        dzb = dz_o + t * dz_t + b * dz_b + h0
        dfb = df_o + t * df_t + b * df_b + h0
        dib = di_o + t * di_t + b * di_b + h0
        dob = do_o + t * do_t + b * do_b + h0
        cb = (t * B + b) * H + h0
        pb = cb - B * H
        p0 = b * H + h0
        if t >= AHEAD:  # the same block AHEAD steps earlier, the backward's next ones
            prefetch(z, zb - AHEAD * z_t, ln)
            prefetch(f, fb - AHEAD * f_t, ln)
            prefetch(c, cb - AHEAD * B * H, ln)  # c_{t-AHEAD}: read at that step and the one after
            if has_i:
                prefetch(i, ib - AHEAD * i_t, ln)
            if has_o:
                prefetch(o, ob - AHEAD * o_t, ln)
                prefetch(gh, ghb - AHEAD * gh_t, ln)
            if has_m:
                prefetch(m, mb - AHEAD * m_t, ln)
            if has_gc:
                prefetch(gc, gcb - AHEAD * gc_t, ln)
        zv = span(z, zb, ln)
        fv = span(f, fb, ln)
        iv = span(i, ib, ln)
        ov = span(o, ob, ln)
        mv = span(m, mb, ln)
        ghv = span(gh, ghb, ln)
        gcv = span(gc, gcb, ln)
        dzv = span(dz, dzb, ln)
        dfv = span(df, dfb, ln)
        div = span(di, dib, ln)
        dov = span(do, dob, ln)
        cv = span(c, cb, ln)
        kv = span(carry, kb, ln)
        pv = span(c, pb, ln) if t > 0 else span(c0, p0, ln)
        bzv = span(bs, h0, ln)
        bfv = span(bs, H + h0, ln)
        bov = span(bs, 2 * H + h0, ln)
        biv = span(bs, 3 * H + h0, ln)
        for j in range(ln):
            zz = widen(zv[j])
            fs_ = widen(fv[j])
            if has_b:
                zz += widen(bzv[j])
                fs_ += widen(bfv[j])
            if act:
                zz = tanh(zz)
                fs_ = sigmoid(fs_)
            ff = fs_
            mm = one
            if has_m:
                mm = widen(mv[j])
                ff = one - mm * (one - fs_)
            prev = widen(pv[j])
            g = kv[j]
            if has_gc:
                g += widen(gcv[j])
            if has_o:
                oo = widen(ov[j])
                if has_b:
                    oo += widen(bov[j])
                if act:
                    oo = sigmoid(oo)
                ghh = widen(ghv[j])
                gdo = ghh * widen(cv[j])
                dov[j] = narrow(gdo * oo * (one - oo) if act else gdo, do.dtype)
                g += ghh * oo
            if has_i:
                ii = widen(iv[j])
                if has_b:
                    ii += widen(biv[j])
                if act:
                    ii = sigmoid(ii)
                gu = g * mm if has_m else g  # gradient of the (masked) update i ⊙ z
                gz = gu * ii
                gf = g * prev
                gi = gu * zz
                div[j] = narrow(gi * ii * (one - ii) if act else gi, di.dtype)
            else:
                gz = g * (one - ff)
                gf = g * (prev - zz)
            if has_m:
                gf = gf * mm
            dzv[j] = narrow(gz * (one - zz * zz) if act else gz, dz.dtype)
            dfv[j] = narrow(gf * fs_ * (one - fs_) if act else gf, df.dtype)
            kv[j] = g * ff

    return step


def pool_forward(z: Tensor, f: Tensor, i: Optional[Tensor], o: Optional[Tensor], c0: Tensor,
                 mask: Optional[Tensor], activate: bool) -> tuple[Tensor, Tensor]:
    """Forward recurrence. z, f, i, o, mask: (T, B, H) with a contiguous last dimension; c0 (B, H).

    Returns ``(c, h)`` in the dtype of ``z``: c (T, B, H); h = o ⊙ c (T, B, H), or an empty tensor
    when ``o`` is None.
    """
    op = rt.operands(z.dtype)
    c, h, _ = _forward_call(z.shape, z.dtype, op(z), op(f), op(i) if i is not None else None,
                            op(o) if o is not None else None, c0, mask, activate, None)
    return c, h


def pool_forward_gates(gates: Tensor, parts: int, c0: Tensor, mask: Optional[Tensor],
                       bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`pool_forward` of a layer's gate pre-activations (T, B, parts·H), in the order Z, F, O, I
    (``parts`` = 2, 3 or 4), plus ``bias`` (parts·H,) contiguous, of the gates' dtype, or None,
    with the activations applied; reads the slices in place (no views).
    Returns ``(c, h, c_last)``: c_last (B, H) is c_T, a tensor of its own."""
    T, B, GH = gates.shape
    return _forward_call((T, B, GH // parts), gates.dtype, *rt.gate_operands(gates, parts), c0, mask, True, bias)


def _forward_call(shape, dtype: torch.dtype, z, f, i, o, c0: Tensor, mask: Optional[Tensor],
                  activate: bool, bias: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    T, B, H = shape
    c = fresh(shape, dtype)
    h = fresh(shape if o is not None else (0,), dtype)
    c_last = torch.empty(B, H, dtype=dtype)
    streamed = dtype != torch.bfloat16 and T * B * H * dtype.itemsize >= rt.STREAM_FROM
    fn = _forward(bool(activate), i is not None, o is not None, mask is not None, bias is not None, dtype, streamed)
    op = rt.operands(dtype)
    absent = op.absent
    c0 = c0.contiguous()  # kept alive by the name while the kernel runs
    args = (op.marker, c0.data_ptr(), c_last.data_ptr(), *z, *f, *(i or absent), *(o or absent), *op(mask),
            bias.data_ptr() if bias is not None else op.dummy, c.data_ptr(), h.data_ptr() if o is not None else op.dummy)
    rt.run_items(fn, args, T, B, H, "pooling forward")
    return c, h, c_last


def pool_backward(grad_h: Optional[Tensor], grad_c: Optional[Tensor], grad_last: Optional[Tensor],
                  z: Tensor, f: Tensor, i: Optional[Tensor], o: Optional[Tensor], c0: Tensor,
                  mask: Optional[Tensor], c: Tensor, activate: bool, dz: Tensor, df: Tensor,
                  di: Optional[Tensor], do: Optional[Tensor]) -> Tensor:
    """Backward recurrence; writes dL/d(pre-activations) into the views dz, df, di, do (T, B, H)
    and returns dL/dc0 (B, H). ``grad_h`` is needed (and only used) when ``o`` is given; absent
    ``grad_c`` / ``grad_last`` count as zeros. ``c`` is the forward's contiguous memory."""
    op = rt.operands(z.dtype)
    opt = lambda x: op(x) if x is not None else None  # noqa: E731
    return _backward_call(z.shape, z.dtype, grad_h, grad_c, grad_last, (op(z), op(f), opt(i), opt(o)),
                          c0, mask, c, activate, (op(dz), op(df), opt(di), opt(do)), None)


def pool_backward_gates(grad_h: Optional[Tensor], grad_c: Optional[Tensor], grad_last: Optional[Tensor],
                        gates: Tensor, parts: int, c0: Tensor, mask: Optional[Tensor], c: Tensor,
                        bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """:func:`pool_backward` of :func:`pool_forward_gates` (with the same ``bias``): returns
    ``(dgates, dc0)``, dgates (T, B, parts·H) the gradient of the gate pre-activations (a new
    contiguous tensor), which is also the bias's before its sum over time and batch (the caller's:
    summed in the kernel it cost as much as it saved)."""
    T, B, GH = gates.shape
    dgates = fresh((T, B, GH), gates.dtype)
    dc0 = _backward_call((T, B, GH // parts), gates.dtype, grad_h, grad_c, grad_last,
                         rt.gate_operands(gates, parts), c0, mask, c, True, rt.gate_operands(dgates, parts), bias)
    return dgates, dc0


def _backward_call(shape, dtype: torch.dtype, grad_h, grad_c, grad_last, gates: tuple, c0: Tensor,
                   mask: Optional[Tensor], c: Tensor, activate: bool, grads: tuple, bias: Optional[Tensor]) -> Tensor:
    T, B, H = shape
    z, f, i, o = gates
    dz, df, di, do = grads
    dc0 = torch.empty((B, H), dtype=dtype)
    fn = _backward(bool(activate), i is not None, o is not None, mask is not None, bias is not None,
                   grad_c is not None, grad_last is not None, dtype)
    last = grad_last.contiguous() if grad_last is not None else None
    c0, c = c0.contiguous(), c.contiguous()  # kept alive by the names while the kernel runs
    op = rt.operands(dtype)
    absent = op.absent
    args = (op.marker, rt.address(last) if last is not None else op.dummy, rt.address(dc0), *op(grad_h), *op(grad_c),
            *z, *f, *(i or absent), *(o or absent), *op(mask), rt.address(bias) if bias is not None else op.dummy,
            rt.address(c0), rt.address(c), *dz, *df, *(di or absent), *(do or absent))
    rt.run_items(fn, args, T, B, H, "pooling backward")
    return dc0
