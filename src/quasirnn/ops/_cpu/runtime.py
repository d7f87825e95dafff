"""What the numba CPU kernels (``ops/pooling/cpu_kernel.py``, ``ops/sru/cpu_kernel.py``) share on
the host side: whether numba is there, tensors handed to numba without copies, and the split of
work over threads.

Nothing is compiled when the package is installed or imported. numba (a dependency, with wheels
for every platform PyTorch supports) compiles each kernel specialisation the first time it runs,
in about a second, and caches the machine code on disk (numba's own cache: ``__pycache__``
beside the sources, or ``$NUMBA_CACHE_DIR``; files are written whole, no lock outlives its
process), so later processes load it in milliseconds. Before the first compilation of a process
one line says so on stderr; the time spent is counted by :func:`compile_seconds`, which the
trainer subtracts from its steps (budget and tokens/s).

Threads: a kernel's work items (blocks of channels of one batch row) are split over
``torch.get_num_threads()`` threads. Where PyTorch runs on OpenMP (its Linux builds), they are
PyTorch's own OpenMP threads: the kernel is handed to that team with ``GOMP_parallel``, as an
ATen op would be, so it neither competes with those threads (each spins for milliseconds after
an op before it sleeps, which halved a kernel run on a pool of its own) nor waits for them to
wake. Elsewhere they are the calling thread and a pool of Python threads. Either way the numba
code runs with the GIL released, and ``torch.set_num_threads`` / ``--threads`` /
``OMP_NUM_THREADS`` bound the kernels too.

``QUASIRNN_NO_NUMBA=1`` disables the kernels on purpose; if numba cannot be imported the ops warn
once and use the vectorised pure-PyTorch kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import torch
from torch import Tensor

BLOCK = 256  # channels per work item
GROUP = 16  # work items whose time loops run interleaved in one thread (prefetch-friendly)
AHEAD = 8  # time steps ahead (the backward kernels: earlier) that the kernels prefetch their operands (BENCHMARKS.md, "Prefetching")
STREAM_FROM = 1 << 24  # bytes of c from which the forward writes it with non-temporal stores
MIN_WORK_PER_THREAD = 1 << 16  # element-steps; less than that runs on the calling thread

DTYPES = (torch.float32, torch.float64, torch.bfloat16)

_lock = threading.Lock()
_available: Optional[bool] = None
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_announced = False
_ready: set = set()  # kernels compiled or loaded in this process
_compile_seconds = 0.0


def available() -> bool:
    """True when numba imports (checked once). False, with one ``RuntimeWarning`` saying why,
    when it does not; False without a warning under ``QUASIRNN_NO_NUMBA=1``."""
    global _available
    if _available is None:
        with _lock:
            if _available is None:
                _available = _import_numba()
    return _available


def _import_numba() -> bool:
    if os.environ.get("QUASIRNN_NO_NUMBA", "") not in ("", "0"):
        return False
    try:
        import numba  # noqa: F401

        from . import intrinsics  # noqa: F401  (defines the numba intrinsics)
    except Exception as exc:  # any import failure means: use the fallback
        warnings.warn(
            f"quasirnn: numba is not usable ({type(exc).__name__}: {exc}); the CPU recurrences use the "
            "slower pure-PyTorch kernel. `pip install numba` gives the fast one.",
            RuntimeWarning,
            stacklevel=4,
        )
        return False
    return True


def supports(x: Tensor) -> bool:
    """Whether the numba kernels take tensors like ``x`` (CPU, float32/float64/bfloat16)."""
    return x.is_cpu and x.dtype in DTYPES and (_available or available())


def _prepare(fn, args: tuple, what: str) -> None:
    """Loads ``fn``'s specialisation for the operands ``args`` from numba's disk cache, or compiles it after a
    one-line notice on stderr (the first compilation of this process only), adding the time
    spent to :func:`compile_seconds`."""
    global _announced, _compile_seconds
    import numba

    start = time.perf_counter()
    # (w0, w1, T, B, H, operands)
    sig = (numba.types.int64,) * 5 + (numba.types.BaseTuple.from_types([numba.typeof(a) for a in args]),)
    try:  # is the machine code on disk already? (numba's cache index; compile() then loads it)
        cached = fn._cache._index_key(sig, fn.targetctx.codegen()) in fn._cache._cache_file._load_index()
    except Exception:
        cached = False
    if not cached and not _announced:
        _announced = True
        print(f"quasirnn: compiling the CPU kernels on first use ({what}; about a second each, "
              "cached on disk for later runs)", file=sys.stderr, flush=True)
    with _interruptible():
        fn.compile(sig)
    _compile_seconds += time.perf_counter() - start


@contextlib.contextmanager
def _interruptible():
    """Ctrl-C (SIGINT) stops a compilation. Python's own handler raises KeyboardInterrupt where the
    signal lands, but inside one of LLVM's ctypes callbacks (numba's object cache) ctypes prints
    that exception and ignores it, and the compilation went on. So while it runs, SIGINT both
    raises and is noted, and a noted one is raised again when the compilation returns. Only in
    the main thread, and only over Python's default handler (a program's own handler, such as
    the trainer's, decides for itself)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    noted = []

    def on_sigint(signum, frame):
        noted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if noted:
        raise KeyboardInterrupt


_DTYPE_OF = {torch.float32: np.float32, torch.float64: np.float64, torch.bfloat16: np.int16}
_markers: dict = {}
_dummies: dict = {}


def marker(dtype: torch.dtype) -> np.ndarray:
    """A one-element array of the numpy dtype the kernels see for ``dtype`` (bfloat16: int16),
    passed only for its type: it tells a kernel what its addresses point to."""
    arr = _markers.get(dtype)
    if arr is None:
        arr = _markers[dtype] = np.zeros(1, _DTYPE_OF[dtype])
    return arr


def address(x: Tensor) -> int:
    """Where ``x``'s first element lives (the kernels index from there with its strides)."""
    return x.data_ptr()


def dummy_address(dtype: torch.dtype) -> int:
    """The address of a one-element tensor standing in for an absent operand (never read)."""
    t = _dummies.get(dtype)
    if t is None:
        t = _dummies[dtype] = torch.zeros(1, dtype=dtype)
    return t.data_ptr()


class Operands:
    """The (address, offset, time stride, batch stride) of each (T, B, H) operand of one kernel
    call, element strides with a contiguous last dimension; (dummy, 0, 0, 0) for an absent one.
    One instance per dtype (:func:`operands`), so a call builds nothing but the tuples."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.marker = marker(dtype)
        self.dummy = dummy_address(dtype)  # the dummy tensor lives as long as the process
        self.absent = (self.dummy, 0, 0, 0)

    def __call__(self, x: Optional[Tensor]) -> tuple:
        if x is None:
            return self.absent
        s = x.stride()
        return x.data_ptr(), 0, s[0], s[1]


_operands: dict = {}


def operands(dtype: torch.dtype) -> Operands:
    """The :class:`Operands` of ``dtype`` (made once per dtype)."""
    op = _operands.get(dtype)
    if op is None:
        op = _operands[dtype] = Operands(dtype)
    return op


def gate_operands(gates: Tensor, parts: int) -> tuple:
    """The operands ``(z, f, i, o)`` of the ``parts`` equal slices of the last dimension of
    ``gates`` (T, B, parts·H) (Z, F, O, I of a layer's gate tensor, or their gradients), as
    :class:`Operands` gives them for views but without making the views: one address, offsets
    0, H, 2H, 3H; i is None below 4 parts, o below 3 (written out: it runs on every call)."""
    s0, s1, _ = gates.stride()
    p, H = gates.data_ptr(), gates.shape[2] // parts
    return ((p, 0, s0, s1), (p, H, s0, s1), (p, 3 * H, s0, s1) if parts > 3 else None,
            (p, 2 * H, s0, s1) if parts > 2 else None)


def compile_seconds() -> float:
    """Seconds this process has spent preparing CPU kernels on first use (compiling, or loading
    from numba's disk cache). The trainer leaves them out of ``--time-budget`` and tokens/s.

    Example::

        >>> from quasirnn.ops import compile_seconds
        >>> compile_seconds() >= 0.0
        True
    """
    return _compile_seconds


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quasirnn-cpu")
            _pool_size = workers
        return _pool


_TEAM_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_jobs: dict = {}  # job number -> (kernel, args, bounds, next slice, errors), while GOMP_parallel runs
_job_numbers = itertools.count(1)
_openmp_parallel = None  # GOMP_parallel of PyTorch's OpenMP runtime, False where there is none


def openmp_parallel():
    """``GOMP_parallel`` of the OpenMP runtime PyTorch's threads belong to, as a ctypes function,
    or None: PyTorch not on OpenMP, not Linux, or the library not found among those loaded
    (libgomp, and LLVM's libomp and Intel's libiomp5, which export the same entry point)."""
    global _openmp_parallel
    if _openmp_parallel is None:
        _openmp_parallel = False
        if sys.platform.startswith("linux") and "parallel backend: OpenMP" in torch.__config__.parallel_info():
            try:
                with open("/proc/self/maps") as maps:
                    paths = sorted({line.split()[-1] for line in maps if re.search(r"/lib(gomp|omp|iomp5)[.-]", line)})
                for path in paths:
                    fn = getattr(ctypes.CDLL(path), "GOMP_parallel", None)
                    if fn is not None:
                        fn.argtypes = [_TEAM_BODY, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                        fn.restype = None
                        _openmp_parallel = fn
                        break
            except OSError:
                pass
    return _openmp_parallel or None


def _after_fork_in_child() -> None:
    """A forked child has neither the parent's OpenMP team (libgomp hangs when used after a fork)
    nor its pool threads: the kernels start a pool of their own there."""
    global _openmp_parallel, _pool, _pool_size
    _openmp_parallel, _pool, _pool_size = False, None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _team_body(job: int) -> None:
    """What each thread of the OpenMP team runs: slices of the job's work items until none is left
    (any team size works, down to the one thread of a nested region)."""
    kernel, args, bounds, slices, errors = _jobs[job]
    try:
        for k in slices:  # itertools.count under the GIL: each slice is taken once
            if k >= len(bounds) - 1:
                return
            kernel(bounds[k], bounds[k + 1], *args)
    except BaseException as exc:  # noqa: BLE001 (re-raised on the calling thread)
        errors.append(exc)


_team_callback = _TEAM_BODY(_team_body)


def run_items(kernel, args: tuple, T: int, B: int, H: int, what: str) -> None:
    """Runs ``kernel(w0, w1, T, B, H, args)`` (a kernel of :func:`.time_loop.time_loop_kernel`,
    ``args`` the tuple of its operands) over the work items ``[0, B·⌈H/BLOCK⌉)`` split into contiguous ranges,
    one per thread (at most ``torch.get_num_threads()``, fewer for small problems, one for less
    than :data:`MIN_WORK_PER_THREAD` element-steps per thread); ``what`` names the kernel in the
    compile notice."""
    if kernel not in _ready:
        with _lock:
            _prepare(kernel, args, what)
            _ready.add(kernel)
    args = (T, B, H, args)  # one tuple of operands: numba types and unboxes it faster than as many arguments
    items = B * ((H + BLOCK - 1) // BLOCK)
    threads = min(torch.get_num_threads(), items, max(1, (T * B * H) // MIN_WORK_PER_THREAD))
    if threads <= 1:
        kernel(0, items, *args)
        return
    bounds = [items * k // threads for k in range(threads + 1)]
    parallel = openmp_parallel()
    if parallel is not None:
        job, errors = next(_job_numbers), []
        _jobs[job] = (kernel, args, bounds, itertools.count(), errors)
        try:
            parallel(_team_callback, job, threads, 0)  # ctypes releases the GIL for the call
        finally:
            del _jobs[job]
        if errors:
            raise errors[0]
        return
    pool = _get_pool(threads - 1)
    futures = [pool.submit(kernel, bounds[k], bounds[k + 1], *args) for k in range(1, threads)]
    kernel(bounds[0], bounds[1], *args)
    for fut in futures:
        fut.result()
