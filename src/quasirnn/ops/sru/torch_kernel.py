"""The vectorised pure-PyTorch kernel of the SRU recurrence (``backend="torch"``): the fallback
when numba is not usable, and the path for devices that have no kernel of their own yet.

Same contract as the numba ``sru_forward`` / ``sru_backward`` in :mod:`.cpu_kernel` (which take
the projection whole): a Python loop over time whose body works on all B × H channels at once,
and a backward pass that is its own reverse-time loop (not autograd through the forward loop).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..inputs import LOW_PRECISION, upcast


def _sru_gates(f: Tensor, r: Tensor, v: Tensor, b: Tensor, prev: Tensor) -> tuple[Tensor, Tensor]:
    """f_t = σ(F_t + v_f ⊙ c_{t−1} + b_f) and r_t = σ(R_t + v_r ⊙ c_{t−1} + b_r), all t at once."""
    return torch.sigmoid(f + b[0] + v[0] * prev), torch.sigmoid(r + b[1] + v[1] * prev)


def sru_forward(
    xt: Tensor, f: Tensor, r: Tensor, xh: Tensor, v: Tensor, b: Tensor, c0: Tensor, use_tanh: bool
) -> tuple[Tensor, Tensor]:
    """SRU forward recurrence, the maths of the numba ``sru_forward`` in :mod:`.cpu_kernel` (which
    takes the projection whole and also returns c_T), on the four (T, B, H) operands.

    Shapes: xt (x̃), f, r (pre-activations), xh (highway input) (T, B, H); v, b (2, H); c0 (B, H).
    Returns ``(h, c)``, both (T, B, H) in the dtype of ``xt`` (float16/bfloat16 computed in
    float32). Only f_t needs the time loop; r_t and h_t follow from c for all t at once.
    """
    dtype = xt.dtype
    if dtype in LOW_PRECISION:
        h, c = sru_forward(*upcast(xt, f, r, xh, v, b, c0), use_tanh)
        return h.to(dtype), c.to(dtype)
    f_bias = f + b[0]
    c = torch.empty_like(xt)
    prev = c0
    for t in range(xt.shape[0]):
        ff = torch.sigmoid(torch.addcmul(f_bias[t], v[0], prev))
        prev = torch.lerp(xt[t], prev, ff, out=c[t])  # f ⊙ c_{t−1} + (1 − f) ⊙ x̃
    prevs = torch.cat([c0.unsqueeze(0), c[:-1]])
    rr = torch.sigmoid(r + b[1] + v[1] * prevs)
    g = torch.tanh(c) if use_tanh else c
    return torch.lerp(xh, g, rr), c  # r ⊙ g(c) + (1 − r) ⊙ x


def sru_backward(
    grad_h: Optional[Tensor],
    grad_c: Optional[Tensor],
    grad_last: Optional[Tensor],
    xt: Tensor,
    f: Tensor,
    r: Tensor,
    xh: Tensor,
    v: Tensor,
    b: Tensor,
    c0: Tensor,
    c: Tensor,
    use_tanh: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Reverse-time recurrence for the SRU gradients.

    Args mirror :func:`sru_forward`, plus the upstream gradients ``grad_h``/``grad_c``
    (T, B, H) and ``grad_last`` (B, H, for c_T), each possibly None, and the forward's ``c``.

    Returns:
        ``(dx̃, dF, dR, dx, dc0, dv, db)``: dF, dR with respect to the pre-activations; dv and
        db (2, H) summed over time and batch; in the input dtypes.

    The gradient G_t = dL/dc_t obeys the linear recurrence
    ``G_{t−1} = base_{t−1} + dR_t ⊙ v_r + A_t ⊙ G_t`` with
    ``A_t = f_t + (c_{t−1} − x̃_t) ⊙ f_t(1 − f_t) ⊙ v_f``: one fused multiply-add per step.
    """
    if xt.dtype in LOW_PRECISION:
        grads = sru_backward(*upcast(grad_h, grad_c, grad_last, xt, f, r, xh, v, b, c0, c), use_tanh)
        dtypes = (xt.dtype, f.dtype, r.dtype, xh.dtype, c0.dtype, v.dtype, b.dtype)
        return tuple(g.to(dtype) for g, dtype in zip(grads, dtypes))
    prevs = torch.cat([c0.unsqueeze(0), c[:-1]])
    ff, rr = _sru_gates(f, r, v, b, prevs)
    g = torch.tanh(c) if use_tanh else c
    if grad_h is None:
        grad_h = torch.zeros_like(c)
    total = grad_h * rr
    if use_tanh:
        total = total * (1 - g * g)
    if grad_c is not None:
        total = total + grad_c
    if grad_last is not None:
        total[-1] += grad_last
    dr = grad_h * (g - xh) * rr * (1 - rr)
    dxh = grad_h * (1 - rr)
    df_dc = (prevs - xt) * ff * (1 - ff)  # ∂(pre-activation gradient of f)/∂G
    a = ff + df_dc * v[0]
    total[:-1].addcmul_(dr[1:], v[1].expand_as(dr[1:]))
    for t in range(c.shape[0] - 2, -1, -1):
        total[t].addcmul_(a[t + 1], total[t + 1])
    dc0 = a[0] * total[0] + dr[0] * v[1]
    df = total * df_dc
    dxt = total * (1 - ff)
    dv = torch.stack([(df * prevs).sum((0, 1)), (dr * prevs).sum((0, 1))])
    db = torch.stack([df.sum((0, 1)), dr.sum((0, 1))])
    return dxt, df, dr, dxh, dc0, dv, db
