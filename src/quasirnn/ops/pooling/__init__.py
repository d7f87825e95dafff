"""QRNN pooling (Bradbury et al. 2016, §2): the custom operators, their autograd, the choice of
kernel, and the public entry points.

* :func:`forget_mult` — the pooling recurrence on already-activated gates (paper §2, eq. 3–5).
* :func:`qrnn_pooling` — one QRNN layer's gate activations, zoneout, pooling and output gate
  fused into one pass over the gate tensor.
* :func:`forget_mult_unchecked`, :func:`qrnn_pooling_unchecked` — the same without the argument
  checks, for layers that built the arguments themselves (:class:`quasirnn.QRNNLayer`, whose
  step-by-step decoding calls them on every step).

Both ops are ``torch.library`` custom ops (``quasirnn::forget_mult``, ``quasirnn::qrnn_pooling``)
with fake (meta) implementations and registered autograd, so ``torch.compile(fullgraph=True)``
traces through them without graph breaks. Their backward passes are custom ops too, each a
reverse-time recurrence kernel.

The kernels, one module each (the ``backend`` argument, see :mod:`quasirnn.ops.backends`):
:mod:`.reference` (the plain loop), :mod:`.torch_kernel` (vectorised PyTorch),
:mod:`.cpu_kernel` (numba), :mod:`.triton_kernel` with the JIT functions of :mod:`.triton_tiles`
(Triton); :mod:`.gates` is the layout of the gate tensor.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import backends
from .._cpu.buffers import fresh_like
from ..backends import check_backend, kernel_for
from ..eager import apply_op, call_op
from ..inputs import check_tensor, lastdim_contiguous, zero_memory
from . import reference, torch_kernel
from .gates import GATE_COUNTS, split_gates

__all__ = ["GATE_COUNTS", "forget_mult", "forget_mult_unchecked", "qrnn_pooling", "qrnn_pooling_unchecked"]


def _cpu():
    """The numba kernels of :mod:`.cpu_kernel`, imported on first use."""
    return backends.kernels(f"{__name__}.cpu_kernel")


def _triton():
    """The Triton kernels of :mod:`.triton_kernel`, imported on first use."""
    return backends.kernels(f"{__name__}.triton_kernel")


def _kernel_forward(kernel, z, f, i, o, c0, mask, activate):
    """Returns (c, h) from ``kernel`` ("cpu", "triton" or "torch", as :func:`kernel_for` chose it)."""
    if kernel == "cpu":
        return _cpu().pool_forward(z, f, i, o, c0, mask, activate)
    if kernel == "triton":
        return _triton().pool_forward(z, f, i, o, c0, mask, activate)
    return torch_kernel.pool_forward(z, f, i, o, c0, mask, activate)


def _kernel_backward(kernel, grad_h, grad_c, grad_last, z, f, i, o, c0, mask, c, activate, out=None):
    """Returns (dz, df, di, do, dc0) from ``kernel`` (as for :func:`_kernel_forward`); with ``out`` =
    (dz, df, di, do) views, writes into them.

    Upstream gradients: ``grad_h``, ``grad_c`` (T, B, H) and ``grad_last`` (B, H), each may be None.
    """
    if kernel == "triton":
        return _triton().pool_backward(grad_h, grad_c, grad_last, z, f, i, o, c0, mask, c, activate, out)
    if o is not None and grad_h is None:
        grad_h = torch.zeros_like(c)
    if kernel == "cpu":
        if out is None:
            out = tuple(None if x is None else fresh_like(c) for x in (z, f, i, o))
        dz, df, di, d_o = out
        dc0 = _cpu().pool_backward(
            grad_h, grad_c, grad_last, z, f, i, o, c0, mask, c, activate, dz, df, di, d_o
        )
        return dz, df, di, d_o, dc0
    grads = torch_kernel.pool_backward(grad_h, grad_c, grad_last, z, f, i, o, c0, mask, c, activate)
    if out is not None:
        for dst, src in zip(out, grads[:4]):
            if dst is not None:
                dst.copy_(src)
        return (*out, grads[4])
    return grads


# --------------------------------------------------------------------------- forget_mult op


def _forget_mult_op_impl(f: Tensor, z: Tensor, c0: Tensor, i: Optional[Tensor], backend: str) -> Tensor:
    c, _ = _kernel_forward(kernel_for(backend, z), z, f, i, None, c0, None, False)
    return c


_forget_mult_op = torch.library.custom_op("quasirnn::forget_mult", mutates_args=())(
    _forget_mult_op_impl
)


@_forget_mult_op.register_fake
def _(f, z, c0, i, backend):
    return torch.empty(f.shape, dtype=f.dtype, device=f.device)


def _forget_mult_backward_op_impl(
    grad_c: Tensor, f: Tensor, z: Tensor, c0: Tensor, i: Optional[Tensor], c: Tensor, backend: str
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    dz, df, di, _, dc0 = _kernel_backward(kernel_for(backend, z), None, grad_c.contiguous(), None, z, f, i, None, c0,
                                          None, c, False)
    return df, dz, dc0, (di if di is not None else f.new_empty(0))


_forget_mult_backward_op = torch.library.custom_op("quasirnn::forget_mult_backward", mutates_args=())(
    _forget_mult_backward_op_impl
)


@_forget_mult_backward_op.register_fake
def _(grad_c, f, z, c0, i, c, backend):
    di = torch.empty(f.shape if i is not None else (0,), dtype=f.dtype, device=f.device)
    return torch.empty_like(f), torch.empty_like(f), torch.empty_like(c0), di


def _forget_mult_setup(ctx, inputs, output):
    f, z, c0, i, backend = inputs
    ctx.save_for_backward(f, z, c0, i, output)
    ctx.backend = backend


def _forget_mult_backward(ctx, grad_c):
    f, z, c0, i, c = ctx.saved_tensors
    if grad_c is None:
        return None, None, None, None, None
    df, dz, dc0, di = call_op(
        _forget_mult_backward_op, _forget_mult_backward_op_impl, grad_c, f, z, c0, i, c, ctx.backend
    )
    return df, dz, dc0, (di if i is not None else None), None


_forget_mult_op.register_autograd(_forget_mult_backward, setup_context=_forget_mult_setup)


# --------------------------------------------------------------------------- fused layer op


def _qrnn_pooling_op_impl(
    gates: Tensor, c0: Tensor, mask: Optional[Tensor], bias: Optional[Tensor], pooling: str, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    kernel = kernel_for(backend, gates)
    # c_T as its own output: a layer that keeps only the final memory sends back a (B, H)
    # gradient instead of a (T, B, H) tensor of zeros.
    if kernel == "cpu":  # reads the gate slices in place, without views, adds the bias; writes c_T itself
        c, h, c_last = _cpu().pool_forward_gates(gates, GATE_COUNTS[pooling], c0, mask, bias)
        return h, c, c_last
    if bias is not None:
        gates = gates + bias
    z, f, o, i = split_gates(gates, pooling)
    c, h = _kernel_forward(kernel, z, f, i, o, c0, mask, True)
    return h, c, c[-1].clone()


_qrnn_pooling_op = torch.library.custom_op("quasirnn::qrnn_pooling", mutates_args=())(
    _qrnn_pooling_op_impl
)


@_qrnn_pooling_op.register_fake
def _(gates, c0, mask, bias, pooling, backend):
    T, B, GH = gates.shape
    shape = (T, B, GH // GATE_COUNTS[pooling])
    h = torch.empty(shape if pooling != "f" else (0,), dtype=gates.dtype, device=gates.device)
    c_last = torch.empty(shape[1:], dtype=gates.dtype, device=gates.device)
    return h, torch.empty(shape, dtype=gates.dtype, device=gates.device), c_last


def _qrnn_pooling_backward_op_impl(
    grad_h: Optional[Tensor],
    grad_c: Optional[Tensor],
    grad_last: Optional[Tensor],
    gates: Tensor,
    c0: Tensor,
    mask: Optional[Tensor],
    bias: Optional[Tensor],
    c: Tensor,
    pooling: str,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """(dgates, dc0, dbias); dbias is an empty tensor without ``bias`` (an op returns tensors only)."""
    grad_h = lastdim_contiguous(grad_h) if pooling != "f" else None  # f-pooling has no output gate
    grad_c = lastdim_contiguous(grad_c)
    kernel = kernel_for(backend, gates)
    if kernel == "cpu":
        if pooling != "f" and grad_h is None:
            grad_h = torch.zeros_like(c)  # the kernel reads grad_h whenever there is an output gate
        dgates, dc0 = _cpu().pool_backward_gates(
            grad_h, grad_c, grad_last, gates, GATE_COUNTS[pooling], c0, mask, c, bias)
    else:
        z, f, o, i = split_gates(gates if bias is None else gates + bias, pooling)
        dgates = fresh_like(gates)
        dz, df, d_o, di = split_gates(dgates, pooling)
        *_, dc0 = _kernel_backward(
            kernel, grad_h, grad_c, grad_last, z, f, i, o, c0, mask, c, True, out=(dz, df, di, d_o),
        )
    return dgates, dc0, dgates.sum((0, 1)) if bias is not None else gates.new_empty(0)


_qrnn_pooling_backward_op = torch.library.custom_op("quasirnn::qrnn_pooling_backward", mutates_args=())(
    _qrnn_pooling_backward_op_impl
)


@_qrnn_pooling_backward_op.register_fake
def _(grad_h, grad_c, grad_last, gates, c0, mask, bias, c, pooling, backend):
    return torch.empty_like(gates), torch.empty_like(c0), torch.empty_like(bias) if bias is not None else gates.new_empty(0)


def _qrnn_pooling_setup(ctx, inputs, output):
    gates, c0, mask, bias, pooling, backend = inputs
    ctx.save_for_backward(gates, c0, mask, bias, output[1])
    ctx.pooling, ctx.backend = pooling, backend
    ctx.set_materialize_grads(False)  # unused outputs send None, not tensors of zeros


def _qrnn_pooling_backward(ctx, grad_h, grad_c, grad_last):
    gates, c0, mask, bias, c = ctx.saved_tensors
    if ctx.pooling == "f":
        grad_h = None
    if grad_h is None and grad_c is None and grad_last is None:
        return None, None, None, None, None, None
    dgates, dc0, dbias = call_op(
        _qrnn_pooling_backward_op, _qrnn_pooling_backward_op_impl,
        grad_h, grad_c, grad_last, gates, c0, mask, bias, c, ctx.pooling, ctx.backend,
    )
    return dgates, dc0, None, dbias if bias is not None else None, None, None


_qrnn_pooling_op.register_autograd(_qrnn_pooling_backward, setup_context=_qrnn_pooling_setup)


# --------------------------------------------------------------------------- public API


def forget_mult(
    f: Tensor, z: Tensor, c0: Optional[Tensor] = None, *, i: Optional[Tensor] = None, backend: str = "auto"
) -> Tensor:
    """The QRNN pooling recurrence (Bradbury et al. 2016, §2, eq. 3–5).

    ``c_t = f_t ⊙ c_{t-1} + (1 − f_t) ⊙ z_t``   (f- and fo-pooling), or
    ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ z_t``          (ifo-pooling, when ``i`` is given),
    starting from ``c_0``. For fo/ifo pooling the layer output is ``h_t = o_t ⊙ c_t``, applied
    by the caller.

    Args:
        f: forget gate, (T, B, H), time-major, float32 or float64 (float16/bfloat16 too, on the
            Triton and PyTorch kernels: accumulated in float32), usually in [0, 1].
        z: candidate, (T, B, H), same dtype and device as ``f``.
        c0: initial memory, (B, H), or None for zeros.
        i: input gate, (T, B, H), or None.
        backend: "auto", "cpu", "triton", "torch" or "reference" (see :mod:`quasirnn.ops.backends`).

    Returns:
        c: (T, B, H), the memory after every step, in the dtype of ``f``. Differentiable in
        ``f``, ``z``, ``i`` and ``c0``; the backward pass is a reverse-time recurrence kernel.

    Raises:
        TypeError: an input is not a floating-point tensor, or the dtypes differ.
        ValueError: a shape is not as above (T = 0 included), the devices differ, or ``backend`` is unknown.
        RuntimeError: ``backend="cpu"`` but numba is not usable, or
            ``backend="triton"`` without triton or on CPU tensors outside the interpreter.

    Example::

        >>> import torch
        >>> from quasirnn.ops import forget_mult
        >>> f = torch.full((3, 1, 2), 0.5)  # (T, B, H)
        >>> forget_mult(f, torch.ones(3, 1, 2))[:, 0, 0].tolist()  # c_t = 0.5 c_{t-1} + 0.5
        [0.5, 0.75, 0.875]
    """
    check_backend(backend)
    check_tensor("f", f)
    if f.dim() != 3:
        raise ValueError(f"f must have shape (T, B, H) (time-major, 3-D), got shape {tuple(f.shape)}")
    T, B, H = f.shape
    if T == 0:
        raise ValueError("f must have at least one time step (T >= 1)")
    check_tensor("z", z, f, (T, B, H))
    if i is not None:
        check_tensor("i", i, f, (T, B, H))
    if c0 is not None:
        check_tensor("c0", c0, f, (B, H))
    return forget_mult_unchecked(f, z, c0, i, backend)


def forget_mult_unchecked(f: Tensor, z: Tensor, c0: Optional[Tensor], i: Optional[Tensor], backend: str) -> Tensor:
    """:func:`forget_mult` of arguments already known to be valid, ``backend`` included (the
    checks are the caller's): what a layer that builds ``f``, ``z`` and ``i`` itself calls
    (:class:`quasirnn.SRULayer` without recurrent gates). Same shapes and result as
    :func:`forget_mult`, and the same errors when the kernel ``backend`` names cannot run here;
    invalid arguments give undefined results.

    Example::

        >>> import torch
        >>> f = torch.full((3, 1, 2), 0.5)  # (T, B, H)
        >>> forget_mult_unchecked(f, torch.ones(3, 1, 2), None, None, "auto")[:, 0, 0].tolist()
        [0.5, 0.75, 0.875]
    """
    if backend == "reference":
        return reference.forget_mult_reference(f, z, c0, i=i)
    if c0 is None:
        c0 = zero_memory(f, f.shape[1], f.shape[2])
    return apply_op(
        _forget_mult_op, _forget_mult_op_impl, _forget_mult_setup, _forget_mult_backward,
        lastdim_contiguous(f), lastdim_contiguous(z), c0.contiguous(), lastdim_contiguous(i), backend,
    )


def qrnn_pooling(
    gates: Tensor,
    c0: Optional[Tensor] = None,
    pooling: str = "fo",
    zoneout_mask: Optional[Tensor] = None,
    *,
    bias: Optional[Tensor] = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """Gate activations, zoneout, pooling and output gate of one QRNN layer in one fused pass.

    Computes Z = tanh, F = σ, O = σ, I = σ of the gate pre-activations plus ``bias`` (paper §2, eq. 1–2),
    the forget gate with zoneout ``F = 1 − m ⊙ (1 − F)`` (§2.1), the recurrence of
    :func:`forget_mult`, and ``h = O ⊙ c`` (eq. 4–5).

    Args:
        gates: pre-activations (T, B, G·H), float32 or float64 (or float16/bfloat16, e.g. under
            ``torch.autocast``: the recurrence is accumulated in float32), last dimension in the order
            Z, F, O, I — G = 2 for "f", 3 for "fo", 4 for "ifo" pooling.
        c0: initial memory (B, H) or None for zeros.
        pooling: "f", "fo" or "ifo".
        zoneout_mask: keep-mask m (T, B, H) of zeros and ones, or None for no zoneout.
        bias: (G·H,) added to every step's pre-activations (the gate convolution's bias, order
            Z, F, O, I), or None. Passing it here instead of adding it to ``gates`` is the same
            function; the CPU kernel then adds it in the pass it makes anyway, which saves the
            projection's copy of the bias into its output.
        backend: "auto", "cpu", "triton", "torch" or "reference".

    Returns:
        ``(h, c, c_last)``: the layer output h (T, B, H), the memory at every step c (T, B, H)
        (``h`` is ``c`` for f-pooling) and the final memory c_T (B, H), a separate tensor so that
        using only it costs no (T, B, H) gradient.

    Raises:
        ValueError: unknown ``pooling``/``backend`` or a shape that does not match (T = 0 included).
        TypeError: non-floating ``gates``, or inputs of different dtypes.
        RuntimeError: the kernel forced by ``backend`` cannot run here (as for :func:`forget_mult`).

    Example::

        >>> import torch
        >>> from quasirnn.ops import qrnn_pooling
        >>> gates = torch.randn(6, 2, 3 * 4)  # (T, B, 3H): Z, F, O of fo-pooling, H = 4
        >>> h, c, c_last = qrnn_pooling(gates, pooling="fo")
        >>> h.shape, c_last.shape
        (torch.Size([6, 2, 4]), torch.Size([2, 4]))
        >>> torch.allclose(c_last, c[-1])
        True
    """
    check_backend(backend)
    if pooling not in GATE_COUNTS:
        raise ValueError(f"pooling must be one of {tuple(GATE_COUNTS)}, got {pooling!r}")
    check_tensor("gates", gates)
    G = GATE_COUNTS[pooling]
    if gates.dim() != 3 or gates.shape[-1] % G:
        raise ValueError(
            f"gates must have shape (T, B, {G}*H) for {pooling!r} pooling, got shape {tuple(gates.shape)}"
        )
    T, B, GH = gates.shape
    if T == 0:
        raise ValueError("gates must have at least one time step (T >= 1)")
    H = GH // G
    if c0 is not None:
        check_tensor("c0", c0, gates, (B, H), like_name="gates")
    if zoneout_mask is not None:
        check_tensor("zoneout_mask", zoneout_mask, gates, (T, B, H), like_name="gates")
    if bias is not None:
        check_tensor("bias", bias, gates, (GH,), like_name="gates")
    return qrnn_pooling_unchecked(gates, c0, pooling, zoneout_mask, backend, bias)


def qrnn_pooling_unchecked(gates: Tensor, c0: Optional[Tensor], pooling: str, zoneout_mask: Optional[Tensor],
                           backend: str, bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`qrnn_pooling` of arguments already known to be valid, ``pooling`` and ``backend``
    included (the checks are the caller's); ``bias`` may be of another floating dtype, e.g. a
    float32 parameter with bfloat16 gates under ``torch.autocast``, and is cast to the gates'.
    What :class:`quasirnn.QRNNLayer`, which builds ``gates`` and the mask itself and checked its
    ``pooling`` and ``backend`` when it was built, calls on every step of step-by-step decoding.
    Same shapes and results as :func:`qrnn_pooling`; invalid arguments give undefined results.

    Example::

        >>> import torch
        >>> h, c, c_last = qrnn_pooling_unchecked(torch.randn(6, 2, 3 * 4), None, "fo", None, "auto")
        >>> h.shape, c_last.shape
        (torch.Size([6, 2, 4]), torch.Size([2, 4]))
    """
    if bias is not None and bias.dtype != gates.dtype:
        bias = bias.to(gates.dtype)
    if backend == "reference":
        h, c = reference.qrnn_pooling_reference(gates if bias is None else gates + bias, c0, pooling, zoneout_mask)
        return h, c, c[-1]
    if c0 is None:
        c0 = zero_memory(gates, gates.shape[1], gates.shape[2] // GATE_COUNTS[pooling])
    h, c, c_last = apply_op(
        _qrnn_pooling_op, _qrnn_pooling_op_impl, _qrnn_pooling_setup, _qrnn_pooling_backward,
        gates.contiguous(), c0.contiguous(), lastdim_contiguous(zoneout_mask),
        bias.contiguous() if bias is not None else None, pooling, backend,
    )
    return (c if pooling == "f" else h), c, c_last
