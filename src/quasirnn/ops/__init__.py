"""Recurrence kernels: QRNN pooling and the SRU recurrence (the only sequential parts).

One package per recurrence, each with its custom ops, its reference loop beside its kernels
(PyTorch, numba, Triton) and its public entry points:

* :mod:`.pooling` — :func:`forget_mult`, the pooling recurrence on activated gates (paper §2,
  eq. 3–5), and :func:`qrnn_pooling`, activations + zoneout + pooling + output gate, fused;
  :func:`forget_mult_reference`, :func:`qrnn_pooling_reference`, their plain-loop definitions.
* :mod:`.sru` — :func:`sru_recurrence`, the SRU recurrence with recurrent gates and highway
  output, fused (Lei et al. 2017, arXiv 1709.02755); :func:`sru_recurrence_reference`.
* :func:`forget_mult_unchecked`, :func:`qrnn_pooling_unchecked`, :func:`sru_recurrence_unchecked`
  — the same without argument checks, for layers that built the arguments themselves.
* :mod:`.backends` — the ``backend`` argument (:data:`BACKENDS`, :data:`SRU_BACKENDS`) and the
  choice of kernel; :mod:`.inputs` — the ops' argument checks; :mod:`.eager` — their fast path
  in plain eager mode.
* :func:`compile_seconds` — time this process has spent compiling CPU kernels on first use.
* :func:`empty_cache` — releases the idle output buffers the CPU kernels keep for reuse.

The numba kernels' shared runtime is the private package ``_cpu``; the Triton kernels share
:mod:`.triton_runtime`.
"""

from ._cpu.buffers import empty_cache
from ._cpu.runtime import compile_seconds
from .backends import BACKENDS, SRU_BACKENDS
from .pooling import GATE_COUNTS, forget_mult, forget_mult_unchecked, qrnn_pooling, qrnn_pooling_unchecked
from .pooling.reference import forget_mult_reference, qrnn_pooling_reference
from .sru import sru_recurrence, sru_recurrence_unchecked
from .sru.reference import sru_recurrence_reference

__all__ = [
    "BACKENDS",
    "GATE_COUNTS",
    "SRU_BACKENDS",
    "compile_seconds",
    "empty_cache",
    "forget_mult",
    "forget_mult_reference",
    "forget_mult_unchecked",
    "qrnn_pooling",
    "qrnn_pooling_reference",
    "qrnn_pooling_unchecked",
    "sru_recurrence",
    "sru_recurrence_reference",
    "sru_recurrence_unchecked",
]
