"""What the Triton kernels (``ops/pooling/triton_kernel.py``, ``ops/sru/triton_kernel.py``) share:
whether triton runs here, the checks and strides of their operands, the accumulator dtype, and
the activations their JIT functions call.

Imported on first use of a Triton kernel (:func:`quasirnn.ops.backends.kernels`): importing
triton costs about a second, and ``TRITON_INTERPRET`` must be set before JIT functions are
defined. The JIT functions exist only where triton is installed (:data:`AVAILABLE`).
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None

AVAILABLE = triton is not None


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def usable_on(device: torch.device) -> bool:
    """Whether the Triton kernels can run on tensors of ``device``: CUDA with triton
    installed, or any device's CPU tensors under the Triton interpreter."""
    if not AVAILABLE:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and interpreting()


def check_device(x: Tensor) -> None:
    """Raises RuntimeError unless the Triton kernels can run on ``x``'s device (:func:`usable_on`)."""
    if not AVAILABLE:
        raise RuntimeError("backend='triton' needs the triton package (pip install triton)")
    if not usable_on(x.device):
        raise RuntimeError(
            f"backend='triton' runs on CUDA tensors, or on CPU tensors only under the Triton "
            f"interpreter (TRITON_INTERPRET=1, for testing); got tensors on {x.device}"
        )


def acc_type(dtype: torch.dtype):
    """The Triton type a kernel accumulates inputs of ``dtype`` in: float64 for float64, else float32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """:func:`acc_type` as a torch dtype (of the partial sums the host allocates)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def strides(x: Optional[Tensor]) -> tuple[int, int]:
    """(time stride, batch stride) of a (T, B, H) operand with a contiguous last dimension; (0, 0)
    for an absent or empty one.

    Raises:
        ValueError: the last dimension is not contiguous.
    """
    if x is None or x.numel() == 0:
        return 0, 0
    if x.stride(-1) != 1:
        raise ValueError("Triton kernels need operands whose last (H) dimension is contiguous")
    return x.stride(0), x.stride(1)


if AVAILABLE:

    @triton.jit
    def sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def tanh(x):
        # tanh(x) = 2σ(2x) − 1: one exp, saturates to ±1 without overflow.
        return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0

    @triton.jit
    def row(x, rows, r):
        """Row ``r`` of a [BT, BLOCK] tile, as a [BLOCK] vector (NaN and ±inf kept)."""
        return tl.sum(tl.where(rows[:, None] == r, x, 0.0), 0)
