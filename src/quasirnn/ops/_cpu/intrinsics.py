"""Scalar maths of the numba CPU kernels (``ops/pooling/cpu_kernel.py``, ``ops/sru/cpu_kernel.py``),
written as numba *intrinsics*: each emits its LLVM instructions straight into the kernel's loop,
so LLVM sees one loop body it can vectorise (a call to an ``@njit`` helper would stay a call, and numba's
IR-level ``inline="always"`` miscompiles these loops).

* :func:`sigmoid`, :func:`tanh` — for float32 a polynomial exp (Cody–Waite range reduction and
  the degree-6 Cephes ``expf`` polynomial, relative error about 2e-7, input clamped to
  [−87, 88], NaN kept); for float64 LLVM's ``exp``. ``tanh(x) = 2 / (1 + exp(−2x)) − 1``: one
  exp, saturating exactly at ±1.
* :func:`prefetch` / :func:`prefetch_write`, :func:`stream` / :func:`fence` — memory hints: fetch
  the operands of a later time step; write an output much larger than the caches with
  non-temporal stores (no read of each cache line before its write, which is a third of a
  streaming kernel's memory traffic on CPUs that do not skip it themselves).
* :func:`span` — ``array[start : start + count]`` without numba's slice machinery (the kernels
  take a few dozen such views per time step; as slices they were ~13 % of the first-use compile).
* :func:`wide_vectors` — asks LLVM for 512-bit vectors in the calling kernel (its default is
  256 bits on Intel's AVX-512 CPUs).
* :func:`inlined` — asks LLVM to inline the calling function into its callers (a kernel's step
  into the time loop of :mod:`.time_loop`).
* :func:`widen` / :func:`narrow` — bfloat16 reaches numba as int16 bits (numpy has no
  bfloat16): ``widen`` turns a loaded element into the float32 the kernels accumulate in,
  ``narrow(x, array)`` turns a float32 into the element type of ``array`` (round to nearest
  even for bfloat16, NaN kept). For float32/float64 arrays both are the identity.

Floating-point flags: no signed zeros, reassociation, contraction, reciprocals and approximate
functions, but not ``nnan``/``ninf``: NaN and inf propagate as in IEEE, so a diverged run still
shows NaN. The kernels also compile with ``error_model="numpy"`` (no ZeroDivisionError check,
which would keep LLVM from vectorising a loop).
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# numba's cache is invalidated by a change of the kernel's own file only; the kernels keep this
# hash of the intrinsics they inline in their closures, which are part of numba's cache key.
MATH_VERSION = int(hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:12], 16)


def salt(*constants) -> int:
    """The value a kernel module puts in every kernel's closure (``SALT_``) so that numba's disk
    cache, keyed on the kernel's own source file and closure, also changes with this file
    (:data:`MATH_VERSION`) and with the module-level ``constants`` its kernels read (numba
    freezes globals into the machine code without making them part of the key: a change of
    ``_cpu.runtime.BLOCK`` alone would otherwise load kernels built for the old value)."""
    return int(hashlib.sha1(repr((MATH_VERSION,) + constants).encode()).hexdigest()[:12], 16)


_FLAGS = tuple(sorted(FASTMATH))


#: How every kernel is compiled besides numba's disk cache: GIL released, no bounds or zero checks,
#: and no C-callable wrapper (``no_cfunc_wrapper``: the kernels are called from Python only; the
#: wrapper took ~0.07 s of each kernel's first-use compile).
KERNEL_OPTIONS = dict(nogil=True, boundscheck=False, error_model="numpy", fastmath=FASTMATH, no_cfunc_wrapper=True)


def kernel(fn):
    """The decorator of every kernel: :data:`KERNEL_OPTIONS`, cached on disk."""
    return njit(cache=True, **KERNEL_OPTIONS)(fn)


# --------------------------------------------------------------------------- LLVM builders

_F32 = ir.FloatType()
_F64 = ir.DoubleType()
_I32 = ir.IntType(32)
_I16 = ir.IntType(16)


def _const(ty, value):
    return ir.Constant(ty, value)


def _clamp_keep_nan(b, x, lo, hi):
    x = b.select(b.fcmp_ordered("<", x, lo), lo, x)
    return b.select(b.fcmp_ordered(">", x, hi), hi, x)


def _exp32(b, x):
    f = lambda v: _const(_F32, v)  # noqa: E731
    x = _clamp_keep_nan(b, x, f(-87.0), f(88.0))
    floor = b.module.declare_intrinsic("llvm.floor", [_F32])
    n = b.call(floor, [b.fadd(b.fmul(x, f(1.44269504088896341), flags=_FLAGS), f(0.5), flags=_FLAGS)])
    r = b.fsub(x, b.fmul(n, f(0.693359375), flags=_FLAGS), flags=_FLAGS)
    r = b.fadd(r, b.fmul(n, f(2.12194440e-4), flags=_FLAGS), flags=_FLAGS)
    p = f(1.9875691500e-4)
    for coef in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        p = b.fadd(b.fmul(p, r, flags=_FLAGS), f(coef), flags=_FLAGS)
    p = b.fadd(b.fadd(b.fmul(b.fmul(p, r, flags=_FLAGS), r, flags=_FLAGS), r, flags=_FLAGS), f(1.0), flags=_FLAGS)
    ni = b.fptosi(n, _I32)
    two_n = b.bitcast(b.add(b.mul(ni, _const(_I32, 1 << 23)), _const(_I32, 127 << 23)), _F32)
    return b.fmul(p, two_n, flags=_FLAGS)


def _exp(b, x):
    if x.type == _F32:
        return _exp32(b, x)
    return b.call(b.module.declare_intrinsic("llvm.exp", [x.type]), [x])


def _sigmoid(b, x):
    one = _const(x.type, 1.0)
    return b.fdiv(one, b.fadd(one, _exp(b, b.fneg(x, flags=_FLAGS)), flags=_FLAGS), flags=_FLAGS)


def _tanh(b, x):
    one, two = _const(x.type, 1.0), _const(x.type, 2.0)
    e = _exp(b, b.fmul(x, _const(x.type, -2.0), flags=_FLAGS))
    return b.fsub(b.fdiv(two, b.fadd(one, e, flags=_FLAGS), flags=_FLAGS), one, flags=_FLAGS)


# --------------------------------------------------------------------------- intrinsics


def _float_only(x):
    if x not in (types.float32, types.float64):
        raise TypeError(f"expected float32 or float64, got {x}")


@intrinsic
def sigmoid(typingctx, x):
    """σ(x) = 1 / (1 + e^(−x)) of a float32 or float64 scalar."""
    _float_only(x)
    return x(x), lambda context, builder, sig, args: _sigmoid(builder, args[0])


@intrinsic
def tanh(typingctx, x):
    """tanh(x) of a float32 or float64 scalar, through one exp."""
    _float_only(x)
    return x(x), lambda context, builder, sig, args: _tanh(builder, args[0])


@intrinsic
def widen(typingctx, x):
    """A loaded element in the accumulator type: int16 bfloat16 bits -> float32, floats as they are."""
    if x == types.int16:
        def codegen(context, builder, sig, args):
            bits = builder.shl(builder.zext(args[0], _I32), _const(_I32, 16))
            return builder.bitcast(bits, _F32)

        return types.float32(x), codegen
    _float_only(x)
    return x(x), lambda context, builder, sig, args: args[0]


@intrinsic
def narrow(typingctx, x, dtype):
    """Accumulator value ``x`` as an element of dtype ``dtype`` (pass ``array.dtype``: an array
    argument would cost a reference count per element): float32 -> bfloat16 bits (round to
    nearest even, NaN kept) for int16, unchanged otherwise."""
    if dtype.dtype == types.int16:
        def codegen(context, builder, sig, args):
            x = args[0]
            u = builder.bitcast(x, _I32)
            lsb = builder.and_(builder.lshr(u, _const(_I32, 16)), _const(_I32, 1))
            rounded = builder.lshr(builder.add(builder.add(u, _const(_I32, 0x7FFF)), lsb), _const(_I32, 16))
            out = builder.select(builder.fcmp_unordered("uno", x, x), _const(_I32, 0x7FC0), rounded)
            return builder.trunc(out, _I16)

        return types.int16(x, dtype), codegen
    return dtype.dtype(x, dtype), lambda context, builder, sig, args: args[0]


@intrinsic
def span(typingctx, array, start, count):
    """``array[start : start + count]`` of a 1-D C-contiguous ``array``, built directly (a data
    pointer, a length and a stride; no reference to the parent, no bounds): what the kernels'
    slices compile to after LLVM's optimisation, at a fraction of the typing and lowering work
    numba spends on a slice (first-use compile time)."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"):
        raise TypeError(f"span takes a 1-D C-contiguous array, got {array}")

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        src = context.make_array(aryty)(context, builder, args[0])
        out = context.make_array(sig.return_type)(context, builder)
        start = context.cast(builder, args[1], sig.args[1], types.intp)
        count = context.cast(builder, args[2], sig.args[2], types.intp)
        intp = context.get_value_type(types.intp)
        context.populate_array(out, data=builder.gep(src.data, [start]), shape=[count],
                               strides=[ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(aryty.dtype)))],
                               itemsize=src.itemsize, meminfo=None)
        return out._getvalue()

    return array(array, start, count), codegen


@intrinsic
def pointer(typingctx, address, marker):
    """The int64 ``address`` as a pointer to elements of ``marker``'s dtype (an array passed only
    for its type), for ``numba.carray``: the host hands tensors over as ``data_ptr()`` addresses,
    which costs far less per call than a numpy view."""
    ptr = types.CPointer(marker.dtype)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr))

    return ptr(address, marker), codegen


LINE_BYTES = 64  # one cache line (x86-64, most arm64)
#: LLVM's locality of the prefetches: 2 = into the L2 cache and beyond, not L1 (``prefetcht1`` on
#: x86). A kernel fetches 8 time steps ahead, several times L1's size, and on an AMD EPYC (Zen 4)
#: fetching all of it into L1 (locality 3, ``prefetcht0``) ran ``forget_mult``'s forward at
#: (512, 32, 512) in 4.0-4.5 ms against 1.9-2.7 ms with this (BENCHMARKS.md, seventh session).
PREFETCH_LOCALITY = 2


def _prefetch_codegen(write: int):
    def codegen(context, builder, sig, args):
        aryty, startty, countty = sig.args
        ary = context.make_array(aryty)(context, builder, args[0])
        step = max(1, LINE_BYTES * 8 // aryty.dtype.bitwidth)
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]), "llvm.prefetch.p0")
        start = context.cast(builder, args[1], startty, types.intp)
        stop = builder.add(start, context.cast(builder, args[2], countty, types.intp))
        with cgutils.for_range_slice(builder, start, stop, context.get_constant(types.intp, step)) as (i, _):
            ptr = builder.bitcast(builder.gep(ary.data, [i]), i8p)
            # rw = read/write, locality, data cache
            builder.call(fn, [ptr, _const(_I32, write), _const(_I32, PREFETCH_LOCALITY), _const(_I32, 1)])
        return context.get_dummy_value()

    return codegen


@intrinsic
def prefetch(typingctx, array, start, count):
    """Asks the CPU to fetch elements ``[start, start + count)`` of the 1-D ``array`` into the
    caches (L2 and beyond: :data:`PREFETCH_LOCALITY`), one prefetch per cache line, and returns
    at once. The kernels walk time outside short runs of channels, a pattern the hardware
    prefetchers do not follow across time steps; fetching a few steps ahead doubles their
    bandwidth at large sizes."""
    return types.void(array, start, count), _prefetch_codegen(0)


@intrinsic
def prefetch_write(typingctx, array, start, count):
    """:func:`prefetch` of elements about to be written (fetched for ownership, so the store
    does not wait on the read that precedes every write to a cache line)."""
    return types.void(array, start, count), _prefetch_codegen(1)


#: LLVM's per-function request for the vector width its loop vectoriser targets (bits).
WIDE_VECTORS = '"prefer-vector-width"="512"'


@intrinsic
def wide_vectors(typingctx):
    """Lets LLVM vectorise the calling kernel's loops with 512-bit registers where the CPU has
    them (AVX-512). LLVM's default for Intel's AVX-512 server CPUs (Skylake-SP to Emerald Rapids)
    is 256 bits, which ran these kernels 15-20 % slower on an Emerald Rapids Xeon (BENCHMARKS.md);
    on CPUs without AVX-512 the request changes nothing. Call it once, anywhere in the kernel."""
    def codegen(context, builder, sig, args):
        # a string attribute: llvmlite's attribute set only admits LLVM's keyword attributes
        # by name, so it is added to the underlying set; it is printed into the IR as written
        set.add(builder.function.attributes, WIDE_VECTORS)
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def inlined(typingctx):
    """Marks the calling function ``alwaysinline`` for LLVM: a jitted function that calls it is
    compiled (typed, lowered, its loops vectorised) once on its own, and then inlined into every
    caller when the caller's machine code is made, as if written out there. What joins the time
    loop of :mod:`.time_loop` and the steps of the kernels into one function per kernel (numba's
    own ``inline="always"`` does the same at the IR level, but retypes the inlined code in every
    caller: it made the first-use compile ten times longer)."""
    def codegen(context, builder, sig, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()

    return types.void(), codegen


VECTOR_BYTES = 64  # the widest vector store (AVX-512); narrower targets split it


def _stream_codegen(context, builder, sig, args):
    dstty, dstartty, srcty, sstartty, countty = sig.args
    dst = context.make_array(dstty)(context, builder, args[0])
    src = context.make_array(srcty)(context, builder, args[2])
    elem = context.get_value_type(dstty.dtype)
    lanes = VECTOR_BYTES * 8 // dstty.dtype.bitwidth
    vec = ir.VectorType(elem, lanes)
    intp = context.get_value_type(types.intp)
    d0 = context.cast(builder, args[1], dstartty, types.intp)
    s0 = context.cast(builder, args[3], sstartty, types.intp)
    n = context.cast(builder, args[4], countty, types.intp)
    size = dstty.dtype.bitwidth // 8
    # elements before the first 64-byte boundary of dst (plain stores), then whole vectors
    addr = builder.ptrtoint(builder.gep(dst.data, [d0]), intp)
    mis = builder.and_(addr, ir.Constant(intp, VECTOR_BYTES - 1))
    head = builder.udiv(builder.and_(builder.sub(ir.Constant(intp, VECTOR_BYTES), mis),
                                     ir.Constant(intp, VECTOR_BYTES - 1)), ir.Constant(intp, size))
    head = builder.select(builder.icmp_signed("<", n, head), n, head)
    nt = builder.module.add_metadata([ir.Constant(_I32, 1)])
    zero = ir.Constant(intp, 0)

    def plain(i):
        value = builder.load(builder.gep(src.data, [builder.add(s0, i)]))
        builder.store(value, builder.gep(dst.data, [builder.add(d0, i)]))

    with cgutils.for_range_slice(builder, zero, head, ir.Constant(intp, 1)) as (i, _):
        plain(i)
    body = builder.sub(n, head)
    body = builder.sub(body, builder.srem(body, ir.Constant(intp, lanes)))
    end = builder.add(head, body)
    with cgutils.for_range_slice(builder, head, end, ir.Constant(intp, lanes)) as (i, _):
        v = builder.load(builder.bitcast(builder.gep(src.data, [builder.add(s0, i)]), vec.as_pointer()), align=size)
        st = builder.store(v, builder.bitcast(builder.gep(dst.data, [builder.add(d0, i)]), vec.as_pointer()),
                           align=VECTOR_BYTES)
        st.set_metadata("nontemporal", nt)
    with cgutils.for_range_slice(builder, end, n, ir.Constant(intp, 1)) as (i, _):
        plain(i)
    return context.get_dummy_value()


@intrinsic
def stream(typingctx, dst, dst_start, src, src_start, count):
    """Copies ``src[src_start : src_start + count]`` to ``dst[dst_start : ...]`` (1-D arrays of one
    float type) with non-temporal vector stores (plain ones before the first 64-byte boundary and
    after the last whole vector): the cache lines are written without being read first and without
    displacing the caches. For outputs much larger than the caches; :func:`fence` must follow
    before another thread reads them."""
    if dst.dtype != src.dtype or dst.dtype not in (types.float32, types.float64):
        raise TypeError(f"stream copies float32 or float64 arrays of one type, got {dst.dtype} and {src.dtype}")
    return types.void(dst, dst_start, src, src_start, count), _stream_codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def fence(typingctx):
    """Makes the non-temporal stores of :func:`stream` visible before any later store: ``sfence``
    on x86, the instruction made for them (LLVM lowers its own fence to a locked ``or`` there), a
    full fence elsewhere."""
    def codegen(context, builder, sig, args):
        if _X86:
            sfence = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                    "llvm.x86.sse.sfence")
            builder.call(sfence, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


# --------------------------------------------------------------------------- accumulator type


def scratch(a, n):
    """An uninitialised (n,) array of ``a``'s accumulator type (float64 for float64 arrays,
    float32 for float32 and bfloat16 ones)."""


def const(a, x):
    """``x`` in ``a``'s accumulator type."""


def _acc_is_f64(a):
    return a.dtype == types.float64


@overload(scratch)
def _ov_scratch(a, n):
    if _acc_is_f64(a):
        return lambda a, n: np.empty(n, np.float64)
    return lambda a, n: np.empty(n, np.float32)


@overload(const)
def _ov_const(a, x):
    if _acc_is_f64(a):
        return lambda a, x: np.float64(x)
    return lambda a, x: np.float32(x)
