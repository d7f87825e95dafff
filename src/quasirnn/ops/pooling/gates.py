"""The layout of a QRNN layer's gate tensor (T, B, G·H): the pooling forms, how many gates each
reads, and the order Z, F, O, I along the last dimension (paper §2, eq. 1–5)."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

#: Pooling form -> number of gates G in the gate tensor: Z, F (f-pooling), Z, F, O (fo), Z, F, O, I (ifo).
GATE_COUNTS = {"f": 2, "fo": 3, "ifo": 4}


def split_gates(gates: Tensor, pooling: str) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Views ``(z, f, o, i)`` of the last dimension of ``gates`` (T, B, G·H) for ``pooling``, each
    (T, B, H); ``o`` and ``i`` are None where the form has no such gate.

    Example::

        >>> import torch
        >>> z, f, o, i = split_gates(torch.zeros(5, 2, 3 * 4), "fo")
        >>> z.shape, o.shape, i is None
        (torch.Size([5, 2, 4]), torch.Size([5, 2, 4]), True)
    """
    parts = gates.chunk(GATE_COUNTS[pooling], dim=-1)
    z, f = parts[0], parts[1]
    o = parts[2] if pooling in ("fo", "ifo") else None
    i = parts[3] if pooling == "ifo" else None
    return z, f, o, i
