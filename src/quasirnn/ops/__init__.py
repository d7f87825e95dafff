"""Recurrence kernels: QRNN pooling and the SRU recurrence (the only sequential parts).

* :func:`forget_mult` — the pooling recurrence on activated gates (paper §2, eq. 3–5).
* :func:`qrnn_pooling` — activations + zoneout + pooling + output gate, fused.
* :func:`sru_recurrence` — the SRU recurrence with recurrent gates and highway output, fused
  (Lei et al. 2017, arXiv 1709.02755).
* :mod:`quasirnn.ops.reference` — the plain-loop definitions the kernels are tested against.
* :func:`compile_seconds` — time this process has spent compiling CPU kernels on first use.
* :func:`empty_cache` — releases the idle output buffers the CPU kernels keep for reuse.
"""

from ._cpu.buffers import empty_cache
from ._cpu.runtime import compile_seconds
from .pooling import BACKENDS, POOLINGS, forget_mult, qrnn_pooling
from .reference import forget_mult_reference, qrnn_pooling_reference, sru_recurrence_reference
from .sru import SRU_BACKENDS, sru_recurrence

__all__ = [
    "BACKENDS",
    "compile_seconds",
    "empty_cache",
    "POOLINGS",
    "forget_mult",
    "forget_mult_reference",
    "qrnn_pooling",
    "qrnn_pooling_reference",
    "SRU_BACKENDS",
    "sru_recurrence",
    "sru_recurrence_reference",
]
