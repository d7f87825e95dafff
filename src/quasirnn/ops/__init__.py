"""Recurrent pooling kernels (the only sequential part of a QRNN).

* :func:`forget_mult` — the pooling recurrence on activated gates (paper §2, eq. 3–5).
* :func:`qrnn_pooling` — activations + zoneout + pooling + output gate, fused.
* :mod:`quasirnn.ops.reference` — the plain-loop definitions the kernels are tested against.
"""

from .pooling import BACKENDS, POOLINGS, forget_mult, qrnn_pooling
from .reference import forget_mult_reference, qrnn_pooling_reference

__all__ = [
    "BACKENDS",
    "POOLINGS",
    "forget_mult",
    "forget_mult_reference",
    "qrnn_pooling",
    "qrnn_pooling_reference",
]
