"""Input validation and kernel choice shared by the recurrence ops (:mod:`.pooling`, :mod:`.sru`)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from . import cpu_runtime


def triton_kernels():
    """The Triton kernels, imported on first use (importing triton costs about a second, and
    ``TRITON_INTERPRET`` must be set before the kernels are defined)."""
    from . import triton_kernel

    return triton_kernel


def kernel_for(backend: str, x: Tensor, *, triton: bool = True) -> str:
    """Which kernel runs for ``backend`` on tensors like ``x``: "cpu" (numba), "triton" or "torch".

    ``triton=False`` is for ops that have no Triton kernel: "auto" then takes the PyTorch kernel
    on GPUs (and "triton" is refused earlier, by :func:`check_backend`).

    Raises:
        ValueError: ``backend="cpu"`` with tensors on another device.
        TypeError: ``backend="cpu"`` with a dtype other than float32/float64/bfloat16.
        RuntimeError: ``backend="cpu"`` but numba is not usable.
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
        triton_kernels()._check_device(x)
        return "triton"
    if backend == "auto":
        if triton and x.device.type == "cuda" and triton_kernels().usable_on(x.device):
            return "triton"
        if cpu_runtime.supports(x):
            return "cpu"
    return "torch"


def lastdim_contiguous(x: Optional[Tensor]) -> Optional[Tensor]:
    """``x`` itself when its last dimension is contiguous (what the kernels need), else a copy."""
    if x is None or x.stride(-1) == 1:
        return x
    return x.contiguous()


def check_backend(backend: str, allowed: Sequence[str]) -> None:
    """Raises ValueError naming the ``allowed`` backends when ``backend`` is not one of them."""
    if backend not in allowed:
        raise ValueError(f"backend must be one of {tuple(allowed)}, got {backend!r}")


def check_tensor(name: str, x, like: Optional[Tensor] = None, shape=None, like_name: str = "f") -> None:
    """Checks that ``x`` is a floating-point tensor, on the device and of the dtype of ``like``
    (called ``like_name`` in the messages), of ``shape`` when given.

    Raises:
        TypeError: not a tensor, not floating point, or a dtype other than ``like``'s.
        ValueError: another device than ``like``, or a shape other than ``shape``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32, float64, float16 or bfloat16), got dtype {x.dtype}"
        )
    if like is not None:
        if x.device != like.device:
            raise ValueError(
                f"{name} is on {x.device} but {like_name} is on {like.device}: all inputs must share one device"
            )
        if x.dtype != like.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but {like_name} has {like.dtype}: all inputs must share one dtype"
            )
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
