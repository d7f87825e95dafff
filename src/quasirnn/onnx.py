"""ONNX export of :class:`~quasirnn.QRNN` and :class:`~quasirnn.SRU` with their real kernels.

``torch.onnx.export(..., dynamo=True)`` keeps this package's recurrences as the custom ops
``quasirnn::qrnn_pooling``, ``quasirnn::forget_mult`` and ``quasirnn::sru_recurrence``; this module
gives each an ONNX translation written with onnxscript (``pip install "quasirnn[onnx]"``): the
element-wise parts as ONNX operators and the recurrence over time as one ONNX ``Scan`` whose body
is a single step (QRNN paper §2 eq. 3–5: c_t = f_t ⊙ c_{t−1} + u_t; SRU eq. 3–7). The sequence
length stays dynamic.

* :func:`translation_table` — the ``custom_translation_table`` to pass to ``torch.onnx.export``;
* :func:`export` — ``torch.onnx.export(..., dynamo=True)`` with that table filled in.

Example::

    >>> import torch, quasirnn
    >>> import quasirnn.onnx
    >>> model = quasirnn.QRNN(4, 8, 2, window=2).eval()
    >>> x = torch.randn(10, 3, 4)
    >>> program = quasirnn.onnx.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("T")},))
    >>> program.save("qrnn.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch

from .ops import GATE_COUNTS  # importing ops also registers the custom ops translated here

__all__ = ["export", "translation_table"]

_OPSET = 18


def _require():
    try:
        import onnxscript  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('quasirnn.onnx needs onnxscript and onnx: pip install "quasirnn[onnx]"') from exc


def _scripts():
    """The Scan-based onnxscript functions (onnxscript is imported on first use)."""
    _require()
    from . import _onnx_scripts as s

    return {"linear_scan": s.linear_scan, "sru_scan": s.sru_scan, "highway": s.highway, "op": s.op}


def _one(value):
    """A script function's single output (called while tracing, it comes back as a 1-tuple)."""
    return value[0] if isinstance(value, (tuple, list)) else value


def _split(x, parts: int, op):
    """``parts`` equal chunks of the last axis of x (like ``Tensor.chunk``)."""
    return op.Split(x, axis=-1, num_outputs=parts)


# --------------------------------------------------------------------------- translations
# Each is traced by the exporter with ONNX values for tensors and Python values for the rest.


def _qrnn_pooling(gates, c0, mask, bias, pooling: str, backend: str):
    s = _scripts()
    op = s["op"]
    G = GATE_COUNTS[pooling]
    if bias is not None:
        gates = gates + bias
    parts = _split(gates, G, op)
    z, f = op.Tanh(parts[0]), op.Sigmoid(parts[1])
    one = op.CastLike(1.0, f)
    if mask is not None:
        f = one - mask * (one - f)  # zoneout keep-mask (paper §2.1) / padding
    if pooling == "ifo":
        i = op.Sigmoid(parts[3])
        if mask is not None:
            i = i * mask
        u = i * z
    else:
        u = (one - f) * z
    c = _one(s["linear_scan"](f, u, c0))
    c_last = op.Squeeze(op.Slice(c, op.Constant(value_ints=[-1]), op.Constant(value_ints=[2**62]),
                                 op.Constant(value_ints=[0])), op.Constant(value_ints=[0]))
    if pooling == "f":
        h = op.ConstantOfShape(op.Constant(value_ints=[0]), value=_zero_like_tensor(gates))
        h = op.CastLike(h, gates)
    else:
        h = op.Sigmoid(parts[2]) * c
    return h, c, c_last


def _zero_like_tensor(_):
    import onnx

    return onnx.helper.make_tensor("zero", onnx.TensorProto.FLOAT, [1], [0.0])


def _forget_mult(f, z, c0, i, backend: str):
    s = _scripts()
    op = s["op"]
    u = (op.CastLike(1.0, f) - f) * z if i is None else i * z
    return _one(s["linear_scan"](f, u, c0))


def _sru_recurrence(u, x, v, b, c0, use_tanh: bool, backend: str):
    s = _scripts()
    op = s["op"]
    if x is None:
        xt, F, R, hw = _split(u, 4, op)
    else:
        xt, F, R = _split(u, 3, op)
        hw = x
    axis0 = op.Constant(value_ints=[0])
    v_f, v_r = (op.Squeeze(t, axis0) for t in op.Split(v, axis=0, num_outputs=2))
    b_f, b_r = (op.Squeeze(t, axis0) for t in op.Split(b, axis=0, num_outputs=2))
    r, c = s["sru_scan"](c0, v_f, v_r, b_f, b_r, xt, F, R)
    h = s["highway"](r, op.Tanh(c) if use_tanh else c, hw)
    c_last = op.Squeeze(op.Slice(c, op.Constant(value_ints=[-1]), op.Constant(value_ints=[2**62]), axis0), axis0)
    return h, c, c_last


def translation_table() -> dict[Any, Any]:
    """ONNX translations of this package's custom ops, for ``torch.onnx.export(...,
    dynamo=True, custom_translation_table=translation_table())``.

    Returns:
        ``{torch.ops.quasirnn.<op>.default: translation}`` for ``qrnn_pooling``, ``forget_mult``
        and ``sru_recurrence`` (forward only: ONNX export is for inference).

    Raises:
        ImportError: onnxscript is not installed (``pip install "quasirnn[onnx]"``).

    Example::

        >>> import torch, quasirnn, quasirnn.onnx
        >>> table = quasirnn.onnx.translation_table()
        >>> torch.ops.quasirnn.qrnn_pooling.default in table
        True
    """
    _require()
    return {
        torch.ops.quasirnn.qrnn_pooling.default: _qrnn_pooling,
        torch.ops.quasirnn.forget_mult.default: _forget_mult,
        torch.ops.quasirnn.sru_recurrence.default: _sru_recurrence,
    }


def export(model: torch.nn.Module, args: tuple, f=None, *, dynamic_shapes=None, **kwargs):
    """``torch.onnx.export(model, args, f, dynamo=True, ...)`` with :func:`translation_table` filled in.

    Args:
        model: e.g. an eval-mode :class:`~quasirnn.QRNN` or :class:`~quasirnn.SRU`, or a model
            containing them. Its outputs must be tensors or (nested) tuples of them; a returned
            :class:`~quasirnn.RecurrentState` is flattened to h, c and the history tensors.
        args: the example inputs, e.g. ``(x,)`` with x (T, B, N).
        f: a path to write the ``.onnx`` file to, or None (then call ``.save(path)`` on the result).
        dynamic_shapes: as for ``torch.export.export``, e.g. ``({0: torch.export.Dim("T")},)`` for
            a dynamic sequence length.
        kwargs: passed on to ``torch.onnx.export`` (a ``custom_translation_table`` is merged
            with this package's).

    Returns:
        The ``torch.onnx.ONNXProgram``.

    Raises:
        ImportError: onnxscript / onnx not installed.
        torch.onnx.errors.*: what ``torch.onnx.export`` raises for unsupported models.

    Example::

        >>> import torch, quasirnn, quasirnn.onnx
        >>> model = quasirnn.SRU(4, 8).eval()
        >>> program = quasirnn.onnx.export(model, (torch.randn(6, 2, 4),))  # doctest: +SKIP
    """
    table = {**translation_table(), **kwargs.pop("custom_translation_table", {})}
    kwargs.setdefault("opset_version", _OPSET)
    kwargs.setdefault("verbose", False)
    return torch.onnx.export(model, args, f, dynamo=True, dynamic_shapes=dynamic_shapes,
                             custom_translation_table=table, **kwargs)
