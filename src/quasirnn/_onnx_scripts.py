"""The onnxscript functions behind :mod:`quasirnn.onnx`: each recurrence as one ONNX ``Scan`` whose
body is a single time step. Imported only when onnxscript is installed (``quasirnn[onnx]``).

The converter of onnxscript reads names (opset, types) from this module's globals, hence a module
of its own, without ``from __future__ import annotations``.
"""

from typing import Tuple, TypeVar, Union

import onnxscript
from onnxscript import BFLOAT16, DOUBLE, FLOAT, FLOAT16
from onnxscript import opset18 as op

__all__ = ["linear_scan", "sru_scan", "highway", "op"]

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
def sru_scan(c0: T, v_f: T, v_r: T, b_f: T, b_r: T, xt: T, F: T, R: T) -> Tuple[T, T]:
    """The SRU memory and reset gate (Lei et al. 2017, eq. 3–5): c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ x̃_t
    in one Scan (f_t = σ(F_t + v_f ⊙ c_{t−1} + b_f)), then r_t = σ(R_t + v_r ⊙ c_{t−1} + b_r) for all
    steps at once; returns (r, c), (T, B, H)."""

    @onnxscript.graph()
    def step(c_prev, vf, bf, xt_t, F_t):
        f = op.Sigmoid(F_t + vf * c_prev + bf)
        c_t = f * c_prev + (op.CastLike(1.0, f) - f) * xt_t
        return c_t, op.Identity(vf), op.Identity(bf), op.Identity(c_t)

    c_last, vf_n, bf_n, c = op.Scan(c0, v_f, b_f, xt, F, body=step, num_scan_inputs=2)
    zero = op.Constant(value_ints=[0])
    c_prev = op.Slice(op.Concat(op.Unsqueeze(c0, zero), c, axis=0), zero, op.Constant(value_ints=[-1]), zero)
    r = op.Sigmoid(R + v_r * c_prev + b_r)
    return r, c


@onnxscript.script()
def highway(r: T, g: T, hw: T) -> T:
    """The SRU output h_t = r_t ⊙ g(c_t) + (1 − r_t) ⊙ x_t (eq. 6), g(c) given: c or tanh(c)."""
    return r * g + (op.CastLike(1.0, r) - r) * hw
