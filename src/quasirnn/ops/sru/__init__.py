"""The SRU recurrence (Lei et al. 2017, arXiv 1709.02755): the custom operator, its autograd, the
choice of kernel, and the public entry points.

:func:`sru_recurrence` is the sequential part of one SRU layer: the forget and reset gates with
their element-wise recurrent terms, the memory recurrence, g and the highway output, fused into
one pass over the projection outputs. It is the ``torch.library`` custom op
``quasirnn::sru_recurrence`` with a fake (meta) implementation and registered autograd; its
backward pass is the custom op ``quasirnn::sru_recurrence_backward``, a reverse-time recurrence
kernel. :func:`sru_recurrence_unchecked` is the same without the argument checks, for layers that
built the arguments themselves (:class:`quasirnn.SRULayer`).

The kernels, one module each (the ``backend`` argument, see :mod:`quasirnn.ops.backends`):
:mod:`.reference` (the plain loop), :mod:`.torch_kernel` (vectorised PyTorch), :mod:`.cpu_kernel`
(numba), :mod:`.triton_kernel` (Triton).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import backends
from .._cpu.buffers import fresh_like
from ..backends import SRU_BACKENDS, check_backend, kernel_for
from ..eager import apply_op, call_op
from ..inputs import check_tensor, lastdim_contiguous, zero_memory
from . import reference, torch_kernel

__all__ = ["sru_recurrence", "sru_recurrence_unchecked"]


def _cpu():
    """The numba kernels of :mod:`.cpu_kernel`, imported on first use."""
    return backends.kernels(f"{__name__}.cpu_kernel")


def _triton():
    """The Triton kernels of :mod:`.triton_kernel`, imported on first use."""
    return backends.kernels(f"{__name__}.triton_kernel")


def _split(u: Tensor, x: Optional[Tensor]):
    """Views (x̃, F, R, highway) of ``u`` (T, B, 3H or 4H); the highway input is ``x`` if given."""
    parts = u.chunk(3 if x is not None else 4, dim=-1)
    return parts[0], parts[1], parts[2], (x if x is not None else parts[3])


# --------------------------------------------------------------------------- forward op


def _sru_op_impl(
    u: Tensor, x: Optional[Tensor], v: Tensor, b: Tensor, c0: Tensor, use_tanh: bool, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    kernel = kernel_for(backend, u)
    if kernel == "cpu":  # reads the slices of u itself and writes c_T
        return _cpu().sru_forward(u, x, v, b, c0, use_tanh)
    xt, f, r, xh = _split(u, x)
    if kernel == "triton":
        h, c = _triton().sru_forward(xt, f, r, xh, v, b, c0, use_tanh)
    else:
        h, c = torch_kernel.sru_forward(xt, f, r, xh, v, b, c0, use_tanh)
    # c_T as its own output, so that a caller keeping only the final memory sends back a
    # (B, H) gradient rather than a (T, B, H) tensor of zeros.
    return h, c, c[-1].clone()


_sru_op = torch.library.custom_op("quasirnn::sru_recurrence", mutates_args=())(
    _sru_op_impl
)


@_sru_op.register_fake
def _(u, x, v, b, c0, use_tanh, backend):
    T, B, _ = u.shape
    H = v.shape[-1]
    out = (T, B, H)
    return u.new_empty(out), u.new_empty(out), u.new_empty(B, H)


# --------------------------------------------------------------------------- backward op


def _sru_backward_op_impl(
    grad_h: Optional[Tensor],
    grad_c: Optional[Tensor],
    grad_last: Optional[Tensor],
    u: Tensor,
    x: Optional[Tensor],
    v: Tensor,
    b: Tensor,
    c0: Tensor,
    c: Tensor,
    use_tanh: bool,
    need_dx: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns (du, dx, dv, db, dc0); dx is an empty tensor when ``x`` is None or not ``need_dx``."""
    xt, f, r, xh = _split(u, x)
    grad_c = lastdim_contiguous(grad_c)
    need_dx = need_dx and x is not None
    kernel = kernel_for(backend, u)
    if kernel == "triton":
        du = torch.empty_like(u)
        dx = torch.empty_like(x) if need_dx else u.new_empty(0)
        dxt, df, dr, dxh = _split(du, dx if x is not None else None)
        *_, dc0, dv, db = _triton().sru_backward(
            lastdim_contiguous(grad_h), grad_c, grad_last, xt, f, r, xh, v, b, c0, c, use_tanh,
            out=(dxt, df, dr, dxh if need_dx or x is None else None),
        )
        return du, dx, dv, db, dc0
    if kernel == "cpu":
        du = fresh_like(u)
        dx = torch.empty_like(x) if need_dx else u.new_empty(0)
        dxt, df, dr, dxh = _split(du, dx if x is not None else None)
        grad_h = torch.zeros_like(c) if grad_h is None else lastdim_contiguous(grad_h)
        dc0, dv, db = _cpu().sru_backward(
            grad_h, grad_c, grad_last, xt, f, r, xh, v, b, c0, c, use_tanh, dxt, df, dr,
            dxh if need_dx or x is None else None,
        )
        return du, dx, dv, db, dc0
    dxt, df, dr, dxh, dc0, dv, db = torch_kernel.sru_backward(
        grad_h, grad_c, grad_last, xt, f, r, xh, v, b, c0, c, use_tanh
    )
    if x is None:
        return torch.cat([dxt, df, dr, dxh], dim=-1), u.new_empty(0), dv, db, dc0
    return torch.cat([dxt, df, dr], dim=-1), (dxh if need_dx else u.new_empty(0)), dv, db, dc0


_sru_backward_op = torch.library.custom_op("quasirnn::sru_recurrence_backward", mutates_args=())(
    _sru_backward_op_impl
)


@_sru_backward_op.register_fake
def _(grad_h, grad_c, grad_last, u, x, v, b, c0, c, use_tanh, need_dx, backend):
    dx = torch.empty_like(x) if x is not None and need_dx else u.new_empty(0)
    return torch.empty_like(u), dx, torch.empty_like(v), torch.empty_like(b), torch.empty_like(c0)


def _sru_setup(ctx, inputs, output):
    u, x, v, b, c0, use_tanh, backend = inputs
    ctx.save_for_backward(u, x, v, b, c0, output[1])
    ctx.use_tanh, ctx.backend = use_tanh, backend
    ctx.set_materialize_grads(False)  # unused outputs send None, not tensors of zeros


def _sru_backward(ctx, grad_h, grad_c, grad_last):
    u, x, v, b, c0, c = ctx.saved_tensors
    if grad_h is None and grad_c is None and grad_last is None:
        return None, None, None, None, None, None, None
    need_dx = x is not None and ctx.needs_input_grad[1]
    du, dx, dv, db, dc0 = call_op(
        _sru_backward_op, _sru_backward_op_impl,
        grad_h, grad_c, grad_last, u, x, v, b, c0, c, ctx.use_tanh, need_dx, ctx.backend,
    )
    return du, (dx if need_dx else None), dv, db, dc0, None, None


_sru_op.register_autograd(_sru_backward, setup_context=_sru_setup)


# --------------------------------------------------------------------------- public API


def sru_recurrence(
    u: Tensor,
    v: Tensor,
    b: Tensor,
    c0: Optional[Tensor] = None,
    *,
    x: Optional[Tensor] = None,
    use_tanh: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """The SRU recurrence with recurrent gates, fused (Lei et al. 2017, arXiv 1709.02755, §2,
    eq. 3–7 with the element-wise recurrent terms v ⊙ c_{t−1} of the published version)::

        f_t = σ(F_t + v_f ⊙ c_{t−1} + b_f)
        r_t = σ(R_t + v_r ⊙ c_{t−1} + b_r)
        c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ x̃_t
        h_t = r_t ⊙ g(c_t) + (1 − r_t) ⊙ x_t        g = identity, or tanh with ``use_tanh``

    where [x̃, F, R] (and the highway x when the layer's sizes differ) are the layer's projection
    of its input, computed by the caller for all t at once.

    Args:
        u: projection outputs, time-major: (T, B, 3H) split along the last dimension as
            [x̃, F, R] when ``x`` is given, or (T, B, 4H) as [x̃, F, R, x] when ``x`` is None
            (the highway input is a projection too). float32 or float64 (float16/bfloat16 on
            the PyTorch and Triton kernels, accumulated in float32).
        v: recurrent gate weights (2, H) = [v_f; v_r], same dtype and device as ``u``.
        b: gate biases (2, H) = [b_f; b_r].
        c0: initial memory (B, H), or None for zeros.
        x: highway input (T, B, H), or None (see ``u``).
        use_tanh: g = tanh (the 2017 text) instead of the identity (the ``sru`` package).
        backend: "auto", "cpu", "triton", "torch" or "reference" (see :mod:`quasirnn.ops.backends`).

    Returns:
        ``(h, c, c_last)``: the output h (T, B, H), the memory at every step c (T, B, H) and the
        final memory c_T (B, H), a separate tensor so that using only it costs no (T, B, H)
        gradient. Differentiable in ``u``, ``x``, ``v``, ``b`` and ``c0``.

    Raises:
        TypeError: an input is not a floating-point tensor, or the dtypes differ.
        ValueError: a shape is not as above, the devices differ, or ``backend`` is unknown
            (one of "auto", "cpu", "triton", "torch", "reference").
        RuntimeError: ``backend="cpu"`` but numba is not usable, or ``backend="triton"``
            without triton or on CPU tensors outside the interpreter.

    Example::

        >>> import torch
        >>> from quasirnn.ops import sru_recurrence
        >>> u = torch.randn(5, 2, 4 * 3)  # (T, B, 4H): x̃, F, R and the highway x, H = 3
        >>> v, b = torch.randn(2, 3), torch.zeros(2, 3)
        >>> h, c, c_last = sru_recurrence(u, v, b)
        >>> h.shape, c_last.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 3]))
    """
    check_backend(backend, SRU_BACKENDS)
    check_tensor("u", u)
    if v is None or b is None:
        raise TypeError("v and b must be (2, H) tensors; for gates without recurrent terms use forget_mult")
    if u.dim() != 3:
        raise ValueError(f"u must have shape (T, B, 3H) or (T, B, 4H) (time-major, 3-D), got shape {tuple(u.shape)}")
    check_tensor("v", v, u, like_name="u")
    if v.dim() != 2 or v.shape[0] != 2:
        raise ValueError(f"v must have shape (2, H) = [v_f; v_r], got shape {tuple(v.shape)}")
    T, B, K = u.shape
    H = v.shape[1]
    check_tensor("b", b, u, (2, H), like_name="u")
    want = 3 * H if x is not None else 4 * H
    if K != want:
        layout = "(T, B, 3H) = [x~, F, R] with x given" if x is not None else "(T, B, 4H) = [x~, F, R, x] without x"
        raise ValueError(f"u must have shape {layout}, H = {H} from v: expected last dimension {want}, got {K}")
    if T == 0:
        raise ValueError("u must have at least one time step (T >= 1)")
    if x is not None:
        check_tensor("x", x, u, (T, B, H), like_name="u")
    if c0 is not None:
        check_tensor("c0", c0, u, (B, H), like_name="u")
    return sru_recurrence_unchecked(u, v, b, c0, x, use_tanh, backend)


def sru_recurrence_unchecked(u: Tensor, v: Tensor, b: Tensor, c0: Optional[Tensor], x: Optional[Tensor],
                             use_tanh: bool, backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`sru_recurrence` of arguments already known to be valid, ``backend`` included (the
    checks are the caller's): what :class:`quasirnn.SRULayer`, which builds ``u`` and ``x``, owns
    ``v`` and ``b`` and checked its ``backend`` when it was built, calls on every step of
    step-by-step decoding. Same shapes and results as :func:`sru_recurrence`; invalid arguments
    give undefined results.

    Example::

        >>> import torch
        >>> u, v, b = torch.randn(5, 2, 4 * 3), torch.randn(2, 3), torch.zeros(2, 3)  # H = 3
        >>> h, c, c_last = sru_recurrence_unchecked(u, v, b, None, None, False, "auto")
        >>> h.shape, c_last.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 3]))
    """
    if backend == "reference":
        h, c = reference.sru_recurrence_reference(u, v, b, c0, x=x, use_tanh=use_tanh)
        return h, c, c[-1]
    if c0 is None:
        c0 = zero_memory(u, u.shape[1], v.shape[1])
    return apply_op(
        _sru_op, _sru_op_impl, _sru_setup, _sru_backward,
        u.contiguous(), lastdim_contiguous(x), v.contiguous(), b.contiguous(), c0.contiguous(), bool(use_tanh), backend,
    )
