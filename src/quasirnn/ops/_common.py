"""Input validation and kernel choice shared by the recurrence ops (:mod:`.pooling`, :mod:`.sru`)."""

from __future__ import annotations

import functools
import importlib
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch._C import _len_torch_dispatch_stack as _len_dispatch_stack

from ._cpu import runtime as cpu_runtime


@functools.lru_cache(maxsize=None)  # import_module's lock and lookup cost a µs on every call
def numba_kernels(module: str):
    """The numba kernel module ``quasirnn.ops.<module>`` (``"cpu_pooling"``, ``"cpu_sru"``), imported
    on first use (``import quasirnn`` does not import numba); later calls return the same module."""
    return importlib.import_module(f".{module}", __package__)


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
        if x.is_cpu:  # is_cpu / is_cuda: a tenth of the cost of x.device on this per-call path
            return "cpu" if cpu_runtime.supports(x) else "torch"
        if triton and x.is_cuda and triton_kernels().usable_on(x.device):
            return "triton"
    return "torch"


_SHARED_ZEROS_UP_TO = 1 << 14  # bytes: the memories of step-by-step decoding and small batches
_shared_zeros: dict = {}


def zero_memory(like: Tensor, B: int, H: int) -> Tensor:
    """The initial memory c_0 = 0 (B, H) in ``like``'s dtype and device, for a recurrence called
    without one. In plain eager mode, small CPU ones (up to 16 KiB) are made once per shape and
    dtype and shared: the kernels only read c_0, and a new tensor of zeros cost 1–2 µs of
    every decoding step; traced code (torch.compile, export) always gets a new one."""
    if like.is_cpu and type(like) is Tensor and B * H * like.itemsize <= _SHARED_ZEROS_UP_TO \
            and not torch.compiler.is_compiling():
        key = (B, H, like.dtype)
        zeros = _shared_zeros.get(key)
        if zeros is None:
            zeros = _shared_zeros[key] = torch.zeros(B, H, dtype=like.dtype)
        return zeros
    return like.new_zeros(B, H)


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


def check_memory(c0, like: Tensor, H: int, like_name: str) -> Tensor:
    """A caller's initial memory ``c0`` for a recurrence over ``like`` (T, B, ·): a floating-point
    c0 is cast to ``like``'s dtype (a float32 state with 16-bit gates under ``torch.autocast``),
    then checked, as :func:`check_tensor` does, to be (B, H) on ``like``'s device.

    Raises:
        TypeError, ValueError: as :func:`check_tensor`.
    """
    if isinstance(c0, Tensor) and c0.dtype != like.dtype and c0.is_floating_point():
        c0 = c0.to(like.dtype)
    check_tensor("c0", c0, like, (like.shape[1], H), like_name=like_name)
    return c0


# --------------------------------------------------------------------------- eager fast path
#
# Each recurrence is a torch.library custom op, so torch.compile, torch.export and ONNX see one
# opaque node. In plain eager mode the op's dispatcher and Python wrappers cost tens of µs per
# call (and the first call imports torch._dynamo, about 1.5 s), which decides step-by-step
# decoding; there the ops run their Python bodies directly, with the same autograd formulas
# through a torch.autograd.Function (or none at all when no gradient is needed).


def _is_eager(args) -> bool:
    """True outside torch.compile / export tracing and dispatch modes, with plain tensors only."""
    for t in args:
        if isinstance(t, Tensor) and type(t) is not Tensor and type(t) is not torch.nn.Parameter:
            return False  # FakeTensor, FunctionalTensor, ... (tracing)
    return not (torch.compiler.is_compiling() or _any_dispatch_mode())


def _any_dispatch_mode() -> bool:
    return _len_dispatch_stack() > 0  # what _python_dispatch._get_current_dispatch_mode() tests


@functools.lru_cache(maxsize=None)
def _eager_function(impl, setup, backward) -> type:
    """A torch.autograd.Function running ``impl`` with ``setup`` / ``backward`` written in the
    custom-op autograd convention (``setup(ctx, inputs, output)``, ``backward(ctx, *grads)``)."""

    def forward(ctx, *args):
        out = impl(*args)
        setup(ctx, args, out)
        return out

    return type(f"Eager_{impl.__name__}", (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(lambda ctx, *grads: backward(ctx, *grads)),
    })


def call_op(op, impl, *args):
    """``op(*args)``, or its Python body ``impl(*args)`` in plain eager mode (no autograd)."""
    if _is_eager(args):
        return impl(*args)
    return op(*args)


def apply_op(op, impl, setup, backward, *args):
    """``op(*args)`` with its registered autograd; in plain eager mode the same through
    a torch.autograd.Function (``setup(ctx, inputs, output)`` and ``backward(ctx, *grads)`` are what
    was registered with ``op.register_autograd``), or ``impl`` alone when no input needs a
    gradient."""
    if not _is_eager(args):
        return op(*args)
    if torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args):
        return _eager_function(impl, setup, backward).apply(*args)
    return impl(*args)
