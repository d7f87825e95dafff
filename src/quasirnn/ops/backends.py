"""Which kernel runs a recurrence: the ``backend`` names, their check, and the choice of kernel.

Every recurrence op takes ``backend`` = one of :data:`BACKENDS`:

* ``"auto"`` — the Triton kernel for CUDA tensors (when triton is installed), the numba kernel
  for float32/float64/bfloat16 CPU tensors, else the vectorised pure-PyTorch kernel.
* ``"cpu"`` — the numba CPU kernel; ``RuntimeError`` if numba is not usable.
* ``"triton"`` — the Triton kernel: CUDA tensors, or CPU tensors under the Triton interpreter
  (``TRITON_INTERPRET=1``, how CI tests it without a GPU).
* ``"torch"`` — the vectorised pure-PyTorch kernel (time loop in Python, channels vectorised).
* ``"reference"`` — the op's plain loop (its ``reference`` module), differentiated by autograd.

The layers check their ``backend`` once, when built (:func:`check_backend`); the public ops
check it on every call; :func:`kernel_for` turns it into the kernel that runs on given tensors.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Sequence

from torch import Tensor

from ._cpu import runtime as cpu_runtime

BACKENDS = ("auto", "cpu", "triton", "torch", "reference")
#: The SRU recurrence has every kernel the pooling has.
SRU_BACKENDS = BACKENDS


def check_backend(backend: str, allowed: Sequence[str] = BACKENDS) -> None:
    """Raises ValueError naming the ``allowed`` backends when ``backend`` is not one of them.

    Example::

        >>> check_backend("cuda")
        Traceback (most recent call last):
        ...
        ValueError: backend must be one of ('auto', 'cpu', 'triton', 'torch', 'reference'), got 'cuda'
    """
    if backend not in allowed:
        raise ValueError(f"backend must be one of {tuple(allowed)}, got {backend!r}")


@functools.lru_cache(maxsize=None)  # import_module's lock and lookup cost a µs on every call
def kernels(module: str) -> ModuleType:
    """The kernel module ``module`` (an absolute name), imported on first use: ``import quasirnn``
    imports neither numba nor triton (which costs about a second, and ``TRITON_INTERPRET`` must
    be set before Triton kernels are defined); later calls return the same module."""
    return importlib.import_module(module)


def _triton_runtime() -> ModuleType:
    return kernels(f"{__package__}.triton_runtime")


def kernel_for(backend: str, x: Tensor) -> str:
    """Which kernel runs for ``backend`` (already checked) on tensors like ``x``: "cpu" (numba),
    "triton" or "torch".

    Raises:
        ValueError: ``backend="cpu"`` with tensors on another device.
        TypeError: ``backend="cpu"`` with a dtype other than float32/float64/bfloat16.
        RuntimeError: ``backend="cpu"`` but numba is not usable; ``backend="triton"`` without
            triton, or on CPU tensors outside the Triton interpreter.
    """
    if backend == "cpu":
        if x.device.type != "cpu":
            raise ValueError(f"backend='cpu' needs CPU tensors, got tensors on {x.device}")
        if x.dtype not in cpu_runtime.DTYPES:
            raise TypeError(f"backend='cpu' supports float32, float64 and bfloat16, got {x.dtype}")
        if not cpu_runtime.available():
            raise RuntimeError("backend='cpu' requested but numba is not usable (see the warning above, "
                               "or unset QUASIRNN_NO_NUMBA)")
        return "cpu"
    if backend == "triton":
        _triton_runtime().check_device(x)
        return "triton"
    if backend == "auto":
        if x.is_cpu:  # is_cpu / is_cuda: a tenth of the cost of x.device on this per-call path
            return "cpu" if cpu_runtime.supports(x) else "torch"
        if x.is_cuda and _triton_runtime().usable_on(x.device):
            return "triton"
    return "torch"
