"""Output buffers of the numba CPU kernels: large outputs reuse the memory of earlier, freed ones.

A recurrence kernel streams its inputs once and writes its outputs once, so it runs at memory
bandwidth, and a fresh output costs as much as the kernel: glibc serves every block above its
mmap threshold (at most 32 MiB) with new pages from the kernel, which are zeroed and
page-faulted in on first write. In a training loop that happens on every call, since each
step frees the last one's outputs. So outputs of at least :data:`REUSE_FROM` bytes come from a
small cache of buffers, the way PyTorch's CUDA caching allocator serves GPU tensors: a buffer
is handed out again only when no tensor, view, numpy array, autograd graph or storage object
refers to it any more (its storage's use count is 1, the cache's own storage object, and that
object has no other Python reference). New buffers of a huge page or more are backed by
transparent huge pages where Linux offers them (``madvise``).

Memory: the cache keeps at most ``QUASIRNN_CPU_CACHE_MB`` MiB (default
:data:`DEFAULT_LIMIT_MB`; 0 turns the cache off) of buffers, live or idle. When a new one
would not fit, idle buffers are released first, and an output that still does not fit is
allocated outside the cache. :func:`empty_cache` (public as ``quasirnn.ops.empty_cache``)
releases every idle buffer.

Example::

    >>> import torch
    >>> from quasirnn.ops._cpu import buffers
    >>> a = buffers.fresh((512, 32, 512), torch.float32)  # 32 MiB: from the cache
    >>> address = a.data_ptr()
    >>> b = buffers.fresh((512, 32, 512), torch.float32)  # a is alive: another buffer
    >>> b.data_ptr() != address
    True
    >>> del a
    >>> buffers.fresh((512, 32, 512), torch.float32).data_ptr() == address  # a's memory again
    True
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
from typing import Iterable, Optional

import torch
from torch import Tensor
from torch._C import _storage_Use_Count as _use_count

__all__ = ["DEFAULT_LIMIT_MB", "REUSE_FROM", "cached_bytes", "empty_cache", "fresh", "fresh_like"]

_HUGE = 1 << 21  # bytes in a transparent huge page (x86-64, arm64 with 4 KiB pages)
_GRAIN = 1 << 16  # buffers below a huge page come in multiples of 64 KiB
#: Outputs of at least this many bytes come from the cache (smaller ones: ``torch.empty``). Below
#: it a fresh output costs less than the dictionary lookup; from about 1 MiB glibc hands out new,
#: page-faulting memory (a (64, 32, 256) forward took 1.6 ms with fresh outputs, 0.7 from the cache).
REUSE_FROM = 1 << 18
#: Default bound of the cache, MiB (``QUASIRNN_CPU_CACHE_MB`` overrides it; 0 turns it off).
DEFAULT_LIMIT_MB = 2048

_lock = threading.Lock()
_buffers: dict[int, list[torch.UntypedStorage]] = {}  # size in bytes (whole huge pages) -> buffers
_held = 0  # bytes of all buffers in the cache
_limit: Optional[int] = None
_madvise = None


def _limit_bytes() -> int:
    global _limit
    if _limit is None:
        text = os.environ.get("QUASIRNN_CPU_CACHE_MB", "")
        try:
            mb = float(text) if text else DEFAULT_LIMIT_MB
        except ValueError:
            raise ValueError(f"QUASIRNN_CPU_CACHE_MB must be a number of MiB >= 0, got {text!r}") from None
        if not mb >= 0:
            raise ValueError(f"QUASIRNN_CPU_CACHE_MB must be a number of MiB >= 0, got {text!r}")
        _limit = int(mb * (1 << 20))
    return _limit


def _libc_madvise():
    global _madvise
    if _madvise is None:
        _madvise = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                _madvise = libc.madvise
            except (OSError, AttributeError):
                pass
    return _madvise


def _on_huge_pages(ptr: int, nbytes: int) -> None:
    """Asks Linux to back [ptr, ptr + nbytes) with transparent huge pages (a refusal only costs speed)."""
    madvise = _libc_madvise()
    if madvise:
        start = (ptr + _HUGE - 1) & ~(_HUGE - 1)
        end = (ptr + nbytes) & ~(_HUGE - 1)
        if end > start:
            madvise(start, end - start, 14)  # MADV_HUGEPAGE


def _first_idle(storages: Iterable[torch.UntypedStorage], idle_refs: Optional[int]):
    """The first of ``storages`` that nothing but the cache refers to, or None: no tensor (the use
    count counts tensors, views and the cache's storage object) and no Python reference to the
    storage object itself (``t.untyped_storage()`` returns that same object without counting a use).

    ``idle_refs`` None: returns the Python reference count seen here for the first storage (when
    only its list holds it, this calibrates :data:`_IDLE_REFS` on this interpreter).
    """
    for storage in storages:
        refs = sys.getrefcount(storage)
        if idle_refs is None:
            return refs
        if refs <= idle_refs and _use_count(storage._cdata) == 1:
            return storage
    return None


#: What :func:`_first_idle` counts for a storage that only the cache's list holds.
_IDLE_REFS: int = _first_idle([torch.UntypedStorage(1)], None)


def _release_idle(keep_at_most: int) -> None:
    """Drops idle buffers (no tensor refers to them), largest first, while the cache holds more
    than ``keep_at_most`` bytes."""
    global _held
    for size in sorted(_buffers, reverse=True):
        storages = _buffers[size]
        while _held > keep_at_most:
            idle = _first_idle(storages, _IDLE_REFS)
            if idle is None:
                break
            storages.remove(idle)
            _held -= size
        if not storages:
            del _buffers[size]


def _outside_cache(shape, dtype: torch.dtype, nbytes: int) -> Tensor:
    """``torch.empty(shape, dtype)`` (``nbytes`` of it), on huge pages when it is large enough to be cached."""
    t = torch.empty(shape, dtype=dtype)
    if nbytes >= 2 * _HUGE:
        _on_huge_pages(t.data_ptr(), nbytes)
    return t


def fresh(shape, dtype: torch.dtype) -> Tensor:
    """A new contiguous CPU tensor of ``shape`` and ``dtype`` with unspecified values, for a kernel
    output: from the cache when it has :data:`REUSE_FROM` bytes or more (see the module docstring),
    else ``torch.empty``. The tensor is the caller's alone: no live tensor shares its memory.

    Raises:
        ValueError: ``QUASIRNN_CPU_CACHE_MB`` is not a number ≥ 0.
    """
    global _held
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < REUSE_FROM:  # the per-call path of small problems (step-by-step decoding)
        return torch.empty(*shape, dtype=dtype)  # sizes unpacked: ~0.4 µs less than a tuple to parse
    limit = _limit_bytes()
    grain = _HUGE if nbytes > _HUGE else _GRAIN  # whole huge pages (or grains): nearby sizes share buffers
    size = -(-nbytes // grain) * grain
    if size > limit:
        return _outside_cache(shape, dtype, nbytes)
    with _lock:
        storage = _first_idle(_buffers.get(size, ()), _IDLE_REFS)
        if storage is not None:
            return torch.empty(0, dtype=dtype).set_(storage, 0, shape)
        if _held + size > limit:
            _release_idle(limit - size)
        if _held + size > limit:
            return _outside_cache(shape, dtype, nbytes)
        storage = torch.UntypedStorage(size)
        _on_huge_pages(storage.data_ptr(), size)
        _buffers.setdefault(size, []).append(storage)
        _held += size
        return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def fresh_like(x: Tensor) -> Tensor:
    """:func:`fresh` with ``x``'s shape and dtype on CPU tensors; ``torch.empty_like`` elsewhere."""
    return fresh(x.shape, x.dtype) if x.device.type == "cpu" else torch.empty_like(x)


def cached_bytes() -> int:
    """Bytes of all buffers the cache holds, in use or idle."""
    return _held


def empty_cache() -> None:
    """Releases every idle buffer of the cache (those in use stay until their tensors are freed),
    like ``torch.cuda.empty_cache`` for the GPU."""
    with _lock:
        _release_idle(0)
