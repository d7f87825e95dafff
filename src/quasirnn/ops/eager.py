"""The recurrence ops' fast path in plain eager mode.

Each recurrence is a ``torch.library`` custom op, so torch.compile, torch.export and ONNX see one
opaque node. In plain eager mode the op's dispatcher and Python wrappers cost tens of µs per call
(and the first call imports torch._dynamo, about 1.5 s), which decides step-by-step decoding;
there the ops run their Python bodies directly, with the same autograd formulas through a
``torch.autograd.Function`` (or none at all when no gradient is needed).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch._C import _len_torch_dispatch_stack as _len_dispatch_stack


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
