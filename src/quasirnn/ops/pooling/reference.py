"""The plain-loop definition of QRNN pooling (``backend="reference"``).

What the fast kernels are tested against: a Python loop over time, differentiated by autograd.
Slow, and meant to be read, not used.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .gates import GATE_COUNTS


def forget_mult_reference(f: Tensor, z: Tensor, c0: Optional[Tensor] = None, *, i: Optional[Tensor] = None) -> Tensor:
    """Reference f-pooling / ifo-pooling recurrence (QRNN paper §2, eq. 3–5).

    ``c_t = f_t ⊙ c_{t-1} + (1 − f_t) ⊙ z_t``, or ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ z_t`` when ``i`` is given.

    Args:
        f: forget gate, (T, B, H), values in [0, 1].
        z: candidate, (T, B, H).
        c0: initial memory, (B, H), or None for zeros.
        i: input gate, (T, B, H), or None.

    Returns:
        c: (T, B, H), the memory at every step, same dtype as ``f``.

    Example::

        >>> import torch
        >>> from quasirnn.ops import forget_mult, forget_mult_reference
        >>> f, z = torch.rand(5, 2, 4), torch.randn(5, 2, 4)
        >>> torch.allclose(forget_mult_reference(f, z), forget_mult(f, z), atol=1e-6)
        True
    """
    c = torch.zeros_like(f[0]) if c0 is None else c0
    out = []
    for t in range(f.shape[0]):
        update = (1 - f[t]) * z[t] if i is None else i[t] * z[t]
        c = f[t] * c + update
        out.append(c)
    return torch.stack(out) if out else f.new_empty(f.shape)


def qrnn_pooling_reference(
    gates: Tensor, c0: Optional[Tensor], pooling: str, zoneout_mask: Optional[Tensor] = None
) -> tuple[Tensor, Tensor]:
    """Reference gate activations + pooling of one QRNN layer (paper §2, eq. 1–5 and §2.1 zoneout).

    Args:
        gates: pre-activations (T, B, G·H) from the gate projection, split along the last
            dimension in the order Z, F, O, I (O for "fo"/"ifo", I for "ifo"); G = 2, 3, 4.
        c0: initial memory (B, H) or None.
        pooling: "f", "fo" or "ifo".
        zoneout_mask: (T, B, H) keep-mask m with values 0 or 1, or None; the forget gate becomes
            ``1 − m ⊙ (1 − σ(F))`` (paper §2.1) and, for ifo, the input gate ``m ⊙ σ(I)``: where
            m = 0 the channel keeps its previous memory exactly (zoneout), in every pooling form.

    Returns:
        (h, c): both (T, B, H). ``c`` is the memory; ``h = o ⊙ c`` for "fo"/"ifo" and ``h = c`` for "f".

    Example::

        >>> import torch
        >>> from quasirnn.ops import qrnn_pooling, qrnn_pooling_reference
        >>> gates = torch.randn(5, 2, 4 * 3)  # ifo-pooling, H = 3
        >>> h, c = qrnn_pooling_reference(gates, None, "ifo")
        >>> torch.allclose(h, qrnn_pooling(gates, pooling="ifo")[0], atol=1e-6)
        True
    """
    parts = gates.chunk(GATE_COUNTS[pooling], dim=-1)
    z = torch.tanh(parts[0])
    f = torch.sigmoid(parts[1])
    if zoneout_mask is not None:
        f = 1 - zoneout_mask * (1 - f)
    i = torch.sigmoid(parts[3]) if pooling == "ifo" else None
    if i is not None and zoneout_mask is not None:
        i = i * zoneout_mask
    c = forget_mult_reference(f, z, c0, i=i)
    h = c if pooling == "f" else torch.sigmoid(parts[2]) * c
    return h, c
