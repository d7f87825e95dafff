"""The recurrence ops' tensor arguments: their checks, and the forms the kernels take them in."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

#: The dtypes the PyTorch and Triton kernels read and write but accumulate in float32.
LOW_PRECISION = (torch.float16, torch.bfloat16)


def upcast(*xs: Optional[Tensor]) -> tuple:
    """float16/bfloat16 operands as float32, so the recurrence accumulates in float32 (others,
    and None, as they are)."""
    return tuple(x.float() if x is not None and x.dtype in LOW_PRECISION else x for x in xs)


_SHARED_ZEROS_UP_TO = 1 << 14  # bytes: the memories of step-by-step decoding and small batches
_shared_zeros: dict = {}


def zero_memory(like: Tensor, B: int, H: int) -> Tensor:
    """The initial memory c_0 = 0 (B, H) in ``like``'s dtype and device, for a recurrence called
    without one. In plain eager mode, small CPU ones (up to 16 KiB) are made once per shape and
    dtype and shared: the kernels only read c_0, and a new tensor of zeros cost 1–2 µs of
    every decoding step; traced code (torch.compile, export) always gets a new one. A shared one is
    an ordinary tensor even when first asked for under ``torch.inference_mode`` (an inference tensor
    would break every later call with autograd: "Inference tensors cannot be saved for backward")."""
    if like.is_cpu and type(like) is Tensor and B * H * like.itemsize <= _SHARED_ZEROS_UP_TO \
            and not torch.compiler.is_compiling():
        key = (B, H, like.dtype)
        zeros = _shared_zeros.get(key)
        if zeros is None:
            with torch.inference_mode(False):
                zeros = _shared_zeros[key] = torch.zeros(B, H, dtype=like.dtype)
        return zeros
    return like.new_zeros(B, H)


def lastdim_contiguous(x: Optional[Tensor]) -> Optional[Tensor]:
    """``x`` itself when its last dimension is contiguous (what the kernels need), else a copy."""
    if x is None or x.stride(-1) == 1:
        return x
    return x.contiguous()


def check_tensor(name: str, x, like: Optional[Tensor] = None, shape=None, like_name: str = "f") -> None:
    """Checks that ``x`` is a floating-point tensor, on the device and of the dtype of ``like``
    (called ``like_name`` in the messages), of ``shape`` when given.

    Raises:
        TypeError: not a tensor, not floating point, or a dtype other than ``like``'s.
        ValueError: another device than ``like``, or a shape other than ``shape``.

    Example::

        >>> import torch
        >>> check_tensor("c0", torch.zeros(2, 3), torch.zeros(5, 2, 3), (2, 4))
        Traceback (most recent call last):
        ...
        ValueError: c0 must have shape (2, 4), got (2, 3)
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


def check_memory(c0, like: Tensor, H: int, like_name: str) -> Tensor:
    """A caller's initial memory ``c0`` for a recurrence over ``like`` (T, B, ·): a floating-point
    c0 is cast to ``like``'s dtype (a float32 state with 16-bit gates under ``torch.autocast``),
    then checked, as :func:`check_tensor` does, to be (B, H) on ``like``'s device. What a layer
    calls on the one input of its recurrence that it does not build itself.

    Raises:
        TypeError, ValueError: as :func:`check_tensor`.

    Example::

        >>> import torch
        >>> check_memory(torch.zeros(2, 3), torch.zeros(5, 2, 9, dtype=torch.float64), 3, "gates").dtype
        torch.float64
    """
    if isinstance(c0, Tensor) and c0.dtype != like.dtype and c0.is_floating_point():
        c0 = c0.to(like.dtype)
    check_tensor("c0", c0, like, (like.shape[1], H), like_name=like_name)
    return c0
