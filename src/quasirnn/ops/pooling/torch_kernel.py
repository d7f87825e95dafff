"""The vectorised pure-PyTorch kernel of QRNN pooling (``backend="torch"``): the fallback when
numba is not usable, and the path for devices that have no kernel of their own yet.

Same contract as the numba ``pool_forward`` / ``pool_backward`` in :mod:`.cpu_kernel`: a Python
loop over time whose body works on all B × H channels at once, and a backward pass that is its
own reverse-time loop (not autograd through the forward loop).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..inputs import LOW_PRECISION, upcast


def _activated(z: Tensor, f: Tensor, i: Optional[Tensor], o: Optional[Tensor], mask: Optional[Tensor], activate: bool):
    """Gate values from (possibly pre-activation) inputs; returns (z, f_sigmoid, f_effective, i, o)."""
    if activate:
        z = torch.tanh(z)
        f = torch.sigmoid(f)
        i = torch.sigmoid(i) if i is not None else None
        o = torch.sigmoid(o) if o is not None else None
    f_eff = f if mask is None else 1 - mask * (1 - f)
    return z, f, f_eff, i, o


def pool_forward(
    z: Tensor, f: Tensor, i: Optional[Tensor], o: Optional[Tensor], c0: Tensor, mask: Optional[Tensor], activate: bool,
) -> tuple[Tensor, Tensor]:
    """Forward recurrence. Shapes: z, f, i, o, mask (T, B, H); c0 (B, H).

    Returns ``(c, h)`` in the dtype of ``z``: c (T, B, H); h = o ⊙ c (T, B, H), or an empty
    tensor when ``o`` is None. float16/bfloat16 inputs are computed in float32.
    """
    dtype = z.dtype
    if dtype in LOW_PRECISION:
        c, h = pool_forward(*upcast(z, f, i, o, c0, mask), activate)
        return c.to(dtype), h.to(dtype)
    z, _, f, i, o = _activated(z, f, i, o, mask, activate)
    if i is not None:
        update = i * z if mask is None else i * z * mask  # zoned-out channels take no input
    else:
        update = (1 - f) * z
    c = torch.empty_like(update)
    prev = c0
    for t in range(z.shape[0]):
        prev = torch.addcmul(update[t], f[t], prev, out=c[t])
    h = o * c if o is not None else c.new_empty(0)
    return c, h


def pool_backward(
    grad_h: Optional[Tensor], grad_c: Optional[Tensor], grad_last: Optional[Tensor],  # upstream gradients
    z: Tensor, f: Tensor, i: Optional[Tensor], o: Optional[Tensor], c0: Tensor, mask: Optional[Tensor],  # as forward
    c: Tensor, activate: bool,
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], Tensor]:
    """Reverse-time recurrence for the gradients.

    Args mirror :func:`pool_forward`, plus the upstream gradients ``grad_h``/``grad_c`` (T, B, H)
    and ``grad_last`` (B, H, for the final memory c_T), each possibly None, and the forward's ``c``.

    Returns:
        ``(dz, df, di, do, dc0)`` with respect to the kernel's inputs (pre-activations when
        ``activate``), in their dtypes; ``di``/``do`` are None when ``i``/``o`` are None.
    """
    if z.dtype in LOW_PRECISION:
        grads = pool_backward(*upcast(grad_h, grad_c, grad_last, z, f, i, o, c0, mask, c), activate)
        return tuple(None if g is None else g.to(dtype) for g, dtype in
                     zip(grads, (z.dtype, f.dtype, z.dtype, z.dtype, c0.dtype)))
    zz, fs, ff, ii, oo = _activated(z, f, i, o, mask, activate)
    total = torch.zeros_like(c) if grad_c is None else grad_c.clone()
    if grad_last is not None:
        total[-1] += grad_last
    d_o = None
    if oo is not None:
        if grad_h is None:
            grad_h = torch.zeros_like(c)
        total.addcmul_(grad_h, oo)
        d_o = grad_h * c
        if activate:
            d_o = d_o * oo * (1 - oo)
    # total[t] becomes G_t = dL/dc_t, accumulated backwards: G_t += f_{t+1} * G_{t+1}.
    for t in range(c.shape[0] - 2, -1, -1):
        total[t].addcmul_(ff[t + 1], total[t + 1])
    dc0 = ff[0] * total[0]
    prev = torch.cat([c0.unsqueeze(0), c[:-1]])
    if ii is not None:
        total_u = total if mask is None else total * mask  # gradient of the masked update
        dz = total_u * ii
        df = total * prev
        di = total_u * zz
        if activate:
            di = di * ii * (1 - ii)
    else:
        dz = total * (1 - ff)
        df = total * (prev - zz)
        di = None
    if mask is not None:
        df = df * mask
    if activate:
        dz = dz * (1 - zz * zz)
        df = df * fs * (1 - fs)
    return dz, df, di, d_o, dc0
