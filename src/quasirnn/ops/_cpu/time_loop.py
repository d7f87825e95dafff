"""The one time loop of the numba kernels: work items, groups of them, and time.

A kernel's work items are blocks of up to :data:`BLOCK` channels of one batch row; each thread
gets a contiguous range ``[w0, w1)`` of them (:func:`.runtime.run_items`) and walks it in groups
of :data:`GROUP` items: for each group it starts every item's carry (a run of the accumulator
type: the memory c_{t−1} in a forward kernel, f_{t+1} ⊙ dL/dc_{t+1} in a backward one), then, for
every time step (in reverse in a backward kernel), runs one step of each item, and finally
writes the carries out (c_T, or dL/dc_0). The loop over a block's channels inside a step is
contiguous and vectorised by LLVM.

That skeleton is the kernel :func:`time_loop_kernel` makes, written once. What a kernel does in
one step of one block is its own: a *step factory* in its op's kernel module, registered with
:func:`steps` under the kernel's name and called with the kernel's flags (plain bools, which
the factory's closure makes constants of the step). The kernel calls the step through a numba
overload selected at compile time by the literal name and flags, and the step asks LLVM to be
inlined (:func:`.intrinsics.inlined`), so every kernel specialisation is one function with its
flags folded away and its loops vectorised as if written out by hand
(``tests/ops/cpu/test_cpu_vectorised.py``).

Operands: a kernel takes ``(w0, w1, T, B, H, operands)``, ``operands`` one tuple (numba types
and unboxes it faster than as many arguments); ``operands[0]`` is the marker of the
element type (:func:`.runtime.marker`), ``operands[1]`` the address of the (B·H,) array the
carries start from and ``operands[2]`` that of the (B·H,) array they end in; the rest is the
step's, which unpacks all of them by name.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Callable

from numba import carray
from numba.extending import overload

from . import intrinsics, runtime
from .intrinsics import const, fence, kernel, narrow, pointer, scratch, wide_vectors, widen

BLOCK, GROUP = runtime.BLOCK, runtime.GROUP
BIG = 1 << 40  # the length of the views: indices are the kernels' own, never checked
SALTED = ("BLOCK", "GROUP", "BIG")  # the module constants the loop reads
#: A hash of this file, in every kernel's salt (:func:`salt`).
LOOP_VERSION = int(hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:12], 16)
#: numba options of the steps: those of every kernel (:data:`.intrinsics.KERNEL_OPTIONS`), called from kernels only.
_STEP_OPTIONS = dict(intrinsics.KERNEL_OPTIONS, no_cpython_wrapper=True)
del _STEP_OPTIONS["nogil"]

_STEPS: dict[str, Callable] = {}


def salt(module_file: str, *constants) -> int:
    """The value every kernel keeps in its closure (``SALT_``). numba keys its disk cache on the
    kernel's own file (this one), bytecode and closure; the salt adds the intrinsics
    (:func:`.intrinsics.salt`), the constants the loop reads, and the source file and the
    ``constants`` of the kernel module whose steps are compiled into the kernel (numba freezes
    module constants into the machine code without making them part of the key)."""
    source = int(hashlib.sha1(Path(module_file).read_bytes()).hexdigest()[:12], 16)
    return intrinsics.salt(LOOP_VERSION, *(globals()[name] for name in SALTED), source, *constants)


def steps(name: str):
    """Registers a step factory for the kernels called ``name``: ``make(*flags)`` returns
    ``step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H)``, which runs time step ``t``
    of the block of ``ln`` channels from ``h0`` of batch row ``b``, whose carry is
    ``carry[kb : kb + ln]`` (``name`` and ``flags`` are the literals it was chosen by). A step
    calls :func:`.intrinsics.inlined` and :func:`.intrinsics.wide_vectors`: it is compiled, and
    its loop vectorised, on its own, then inlined into the kernel.

    Example::

        >>> @steps("doc example")
        ... def make(doubled):
        ...     def step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H):
        ...         for j in range(ln):
        ...             carry[kb + j] = carry[kb + j] * (2.0 if doubled else 1.0)
        ...     return step
        >>> callable(_STEPS["doc example"])
        True
    """
    def register(make: Callable) -> Callable:
        _STEPS[name] = functools.lru_cache(maxsize=None)(make)
        return make

    return register


def step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H):
    """One time step of one block: in compiled code, the step registered as ``name``
    (:func:`steps`) for the literal ``flags``."""
    raise NotImplementedError("step runs inside numba kernels only")


@overload(step, prefer_literal=True, jit_options=_STEP_OPTIONS)
def _step(name, flags, operands, carry, kb, t, b, h0, ln, T, B, H):
    return _STEPS[name.literal_value](*(flag.literal_value for flag in flags.types))


@functools.lru_cache(maxsize=None)
def time_loop_kernel(name: str, flags: tuple, reverse: bool, from_zero: bool, fenced: bool, salt_: int, dtype):
    """The kernel ``(w0, w1, T, B, H, operands)`` running the steps of ``name`` with ``flags``
    (:func:`steps`) over the work items ``[w0, w1)``: time walked backwards with ``reverse``; the
    carries started at zero with ``from_zero`` (else from ``operands[1]``); a
    :func:`.intrinsics.fence` at the end with ``fenced`` (after non-temporal stores); ``salt_``
    from :func:`salt`; ``dtype`` (the operands' torch dtype) only makes one kernel object per
    dtype, so that each has exactly one signature (see :func:`.runtime.run_items`)."""
    NAME, FLAGS, REVERSE, FROM_ZERO, FENCED, SALT_ = name, tuple(flags), reverse, from_zero, fenced, salt_

    @kernel
    def time_loop(w0, w1, T, B, H, operands):
        mk = operands[0]
        first = carray(pointer(operands[1], mk), BIG)
        last = carray(pointer(operands[2], mk), BIG)
        if SALT_ < 0:
            return
        wide_vectors()
        zero = const(last, 0.0)
        nblk = (H + BLOCK - 1) // BLOCK
        carry = scratch(last, GROUP * BLOCK)
        g0 = w0
        while g0 < w1:
            n = min(GROUP, w1 - g0)
            for k in range(n):
                b = (g0 + k) // nblk
                h0 = (g0 + k - b * nblk) * BLOCK
                for j in range(min(BLOCK, H - h0)):
                    carry[k * BLOCK + j] = zero if FROM_ZERO else widen(first[b * H + h0 + j])
            for s in range(T):
                t = T - 1 - s if REVERSE else s
                for k in range(n):
                    b = (g0 + k) // nblk
                    h0 = (g0 + k - b * nblk) * BLOCK
                    step(NAME, FLAGS, operands, carry, k * BLOCK, t, b, h0, min(BLOCK, H - h0), T, B, H)
            for k in range(n):
                b = (g0 + k) // nblk
                h0 = (g0 + k - b * nblk) * BLOCK
                for j in range(min(BLOCK, H - h0)):
                    last[b * H + h0 + j] = narrow(carry[k * BLOCK + j], last.dtype)
            g0 += n
        if FENCED:
            fence()

    return time_loop
