"""The onnxscript functions behind :mod:`quasirnn.onnx`: each recurrence as one ONNX ``Scan`` whose
body is a single time step. Imported only when onnxscript is installed (``quasirnn[onnx]``).

The converter of onnxscript reads names (opset, types) from this module's globals, hence a module
of its own, without ``from __future__ import annotations``.
"""

from typing import Tuple, TypeVar, Union

import onnxscript
from onnxscript import BFLOAT16, DOUBLE, FLOAT, FLOAT16
from onnxscript import opset18 as op

__all__ = ["linear_scan", "sru_scan", "sru_scan_tanh", "op"]

T = TypeVar("T", bound=Union[FLOAT, DOUBLE, FLOAT16, BFLOAT16])


@onnxscript.script()
def linear_scan(f: T, u: T, c0: T) -> T:
    """c_t = f_t ⊙ c_{t−1} + u_t along axis 0 of f, u (T, B, H) from c0 (B, H); returns c (T, B, H)."""

    @onnxscript.graph()
    def step(c_prev, f_t, u_t):
        c_t = f_t * c_prev + u_t
        c_out = op.Identity(c_t)
        return c_t, c_out

    c_last, c_all = op.Scan(c0, f, u, body=step, num_scan_inputs=2)
    return c_all


@onnxscript.script()
def sru_scan(c0: T, v_f: T, v_r: T, b_f: T, b_r: T, xt: T, F: T, R: T, hw: T) -> Tuple[T, T]:
    """The SRU recurrence with g = identity (Lei et al. 2017, eq. 3–7); returns (h, c), (T, B, H)."""

    @onnxscript.graph()
    def step(c_prev, vf, vr, bf, br, xt_t, F_t, R_t, hw_t):
        f = op.Sigmoid(F_t + vf * c_prev + bf)
        r = op.Sigmoid(R_t + vr * c_prev + br)
        c_t = f * c_prev + (op.CastLike(1.0, f) - f) * xt_t
        h_t = r * c_t + (op.CastLike(1.0, r) - r) * hw_t
        return c_t, op.Identity(vf), op.Identity(vr), op.Identity(bf), op.Identity(br), h_t, op.Identity(c_t)

    c_last, vf_n, vr_n, bf_n, br_n, h, c = op.Scan(c0, v_f, v_r, b_f, b_r, xt, F, R, hw, body=step,
                                                  num_scan_inputs=4)
    return h, c


@onnxscript.script()
def sru_scan_tanh(c0: T, v_f: T, v_r: T, b_f: T, b_r: T, xt: T, F: T, R: T, hw: T) -> Tuple[T, T]:
    """The SRU recurrence with g = tanh (``use_tanh=True``); returns (h, c), (T, B, H)."""

    @onnxscript.graph()
    def step(c_prev, vf, vr, bf, br, xt_t, F_t, R_t, hw_t):
        f = op.Sigmoid(F_t + vf * c_prev + bf)
        r = op.Sigmoid(R_t + vr * c_prev + br)
        c_t = f * c_prev + (op.CastLike(1.0, f) - f) * xt_t
        h_t = r * op.Tanh(c_t) + (op.CastLike(1.0, r) - r) * hw_t
        return c_t, op.Identity(vf), op.Identity(vr), op.Identity(bf), op.Identity(br), h_t, op.Identity(c_t)

    c_last, vf_n, vr_n, bf_n, br_n, h, c = op.Scan(c0, v_f, v_r, b_f, b_r, xt, F, R, hw, body=step,
                                                  num_scan_inputs=4)
    return h, c
