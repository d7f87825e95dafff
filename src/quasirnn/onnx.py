"""ONNX export of :class:`~quasirnn.QRNN` and :class:`~quasirnn.SRU` with their real kernels.

``torch.onnx.export(..., dynamo=True)`` keeps this package's recurrences as the custom ops
``quasirnn::qrnn_pooling``, ``quasirnn::forget_mult`` and ``quasirnn::sru_recurrence``; this module
gives each an ONNX translation written with onnxscript (``pip install "quasirnn[onnx]"``): the
element-wise parts as ONNX operators and the recurrence over time as one ONNX ``Scan`` whose body
is a single step (QRNN paper §2 eq. 3–5: c_t = f_t ⊙ c_{t−1} + u_t; SRU eq. 3–7). The sequence
length stays dynamic.

* :func:`translation_table` — the ``custom_translation_table`` to pass to ``torch.onnx.export``;
* :func:`export` — ``torch.onnx.export(..., dynamo=True)`` with that table filled in; with
  ``with_state=True`` the graph takes and returns the state (memories and convolution history),
  so that a stream runs in onnxruntime chunk by chunk or step by step;
* :class:`Stream` — runs such a graph in an ``onnxruntime.InferenceSession`` chunk by chunk,
  carrying the state between calls.

int8: ``onnxruntime.quantization.quantize_dynamic(path, int8_path, weight_type=QuantType.QUInt8)`` on
an exported file quantises the gate projections (8-bit weights, activations quantised per call);
the result runs, and streams with :class:`Stream`, as the float32 file does (uint8 weights: int8
ones saturate on CPUs without VNNI; ``benchmarks/onnx_speed.py`` measures both routes).

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

from .nn.stack import RecurrentState, StackedRecurrent
from .ops import GATE_COUNTS  # importing ops also registers the custom ops translated here

__all__ = ["export", "translation_table", "Stream"]

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


def export(model: torch.nn.Module, args: tuple, f=None, *, dynamic_shapes=None, with_state: bool = False, **kwargs):
    """``torch.onnx.export(model, args, f, dynamo=True, ...)`` with :func:`translation_table` filled in.

    Args:
        model: e.g. an eval-mode :class:`~quasirnn.QRNN` or :class:`~quasirnn.SRU`, or a model
            containing them. Its outputs must be tensors or (nested) tuples of them; a returned
            :class:`~quasirnn.RecurrentState` is flattened to h, c and the history tensors.
        args: the example inputs, e.g. ``(x,)`` with x (T, B, N).
        f: a path to write the ``.onnx`` file to, or None (then call ``.save(path)`` on the result).
        dynamic_shapes: as for ``torch.export.export``, e.g. ``({0: torch.export.Dim("T")},)`` for
            a dynamic sequence length. Must be None with ``with_state`` (T and B are then dynamic).
        with_state: export a unidirectional :class:`~quasirnn.QRNN` or :class:`~quasirnn.SRU`
            with its state as graph inputs and outputs, so that a stream runs chunk by chunk
            (see :class:`Stream`). ``args`` is then ``(x,)``, x (T, B, N) or (B, T, N) with
            ``batch_first``, and the graph is

            * inputs ``input`` (T, B, N), ``c_0`` (L, B, H) the memories, and for every layer l
              of window k > 1 ``history_<l>`` (k − 1, B, N_l), its last k − 1 inputs (oldest
              first; ``RecurrentState.inputs``), zeros at the start of a stream;
            * outputs ``output`` (T, B, H_out), ``h_n`` (L, B, H_out), ``c_n`` (L, B, H) and
              ``history_<l>_n`` (k − 1, B, N_l): feed ``c_n`` back as ``c_0`` and
              ``history_<l>_n`` as ``history_<l>``.

            T and B are dynamic (T ≥ 1, one step at a time included); float32 like the weights.
        kwargs: passed on to ``torch.onnx.export`` (a ``custom_translation_table`` is merged
            with this package's).

    Returns:
        The ``torch.onnx.ONNXProgram``.

    Raises:
        ImportError: onnxscript / onnx not installed.
        TypeError: ``with_state`` with a model that is not a QRNN or SRU.
        ValueError: ``with_state`` with a bidirectional model (its backward direction reads the
            sequence from the end, so it cannot stream), an unbatched input, or ``dynamic_shapes``.
        torch.onnx.errors.*: what ``torch.onnx.export`` raises for unsupported models.

    Example::

        >>> import torch, quasirnn, quasirnn.onnx
        >>> model = quasirnn.SRU(4, 8).eval()
        >>> program = quasirnn.onnx.export(model, (torch.randn(6, 2, 4),))  # doctest: +SKIP
        >>> qrnn = quasirnn.QRNN(4, 8, 2, window=2).eval()
        >>> program = quasirnn.onnx.export(qrnn, (torch.randn(6, 2, 4),), with_state=True)  # doctest: +SKIP
        >>> [i.name for i in program.model.graph.inputs]  # doctest: +SKIP
        ['input', 'c_0', 'history_0', 'history_1']
    """
    if with_state:
        model, args, dynamic_shapes, names = _with_state(model, args, dynamic_shapes)
        kwargs.setdefault("input_names", names[0])
        kwargs.setdefault("output_names", names[1])
    table = {**translation_table(), **kwargs.pop("custom_translation_table", {})}
    kwargs.setdefault("opset_version", _OPSET)
    kwargs.setdefault("verbose", False)
    return torch.onnx.export(model, args, f, dynamo=True, dynamic_shapes=dynamic_shapes,
                             custom_translation_table=table, **kwargs)


# --------------------------------------------------------------------------- with the state


class _WithState(torch.nn.Module):
    """``forward(input, c_0, history) -> (output, h_n, c_n, history_n)``: a unidirectional stack
    with its state as plain tensors; ``history`` holds the (k−1, B, N_l) inputs of the layers of
    window k > 1 only (the others' are empty and stay inside the graph)."""

    def __init__(self, rnn: StackedRecurrent):
        super().__init__()
        self.rnn = rnn
        self.shapes = [(layer.window, layer.input_size) for layer in rnn.layers]

    def forward(self, input, c_0, history: list):
        given = iter(history)
        B = c_0.shape[1]
        inputs = tuple(next(given) if k > 1 else input.new_zeros(0, B, n) for k, n in self.shapes)
        output, state = self.rnn(input, RecurrentState(None, c_0, inputs))
        return output, state.h, state.c, tuple(x for x, (k, _) in zip(state.inputs, self.shapes) if k > 1)


def _with_state(model, args, dynamic_shapes):
    """The wrapper, example inputs (zero state), dynamic T and B, and the input and output names."""
    if not isinstance(model, StackedRecurrent):
        raise TypeError(f"with_state exports a quasirnn.QRNN or quasirnn.SRU, got {type(model).__name__}")
    if model.bidirectional:
        raise ValueError("with_state needs a unidirectional model: a backward direction reads the sequence "
                         "from its end, so it cannot run chunk by chunk")
    if dynamic_shapes is not None:
        raise ValueError("with_state makes T and B dynamic itself: leave dynamic_shapes None")
    x = args[0] if isinstance(args, (tuple, list)) else args
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"with_state needs args = (x,) with x batched, (T, B, N) or (B, T, N) with batch_first; "
                         f"got {getattr(x, 'shape', type(x).__name__)}")
    wrapper = _WithState(model).train(model.training)
    B = x.shape[0 if model.batch_first else 1]
    like = dict(dtype=x.dtype, device=x.device)
    c_0 = torch.zeros(model.num_layers, B, model.hidden_size, **like)
    windowed = [(l, k, n) for l, (k, n) in enumerate(wrapper.shapes) if k > 1]
    history = [torch.zeros(k - 1, B, n, **like) for _, k, n in windowed]
    T_dim, B_dim = torch.export.Dim("T", min=1), torch.export.Dim("B", min=1)
    x_dims = {0: B_dim, 1: T_dim} if model.batch_first else {0: T_dim, 1: B_dim}
    shapes = (x_dims, {1: B_dim}, [{1: B_dim} for _ in windowed])
    inputs = ["input", "c_0"] + [f"history_{l}" for l, _, _ in windowed]
    outputs = ["output", "h_n", "c_n"] + [f"history_{l}_n" for l, _, _ in windowed]
    return wrapper, (x, c_0, history), shapes, (inputs, outputs)


class Stream:
    """Runs a model exported with ``export(..., with_state=True)`` in onnxruntime chunk by chunk,
    carrying the state (memories ``c_0`` and convolution histories ``history_<l>``) between calls.

    Each call ``stream(chunk)`` runs ``session`` on chunk (T_i, B, N) (or (B, T_i, N) with
    ``batch_first``), any T_i ≥ 1, and returns the output (T_i, B, H_out); the concatenation of
    the outputs over a stream split into chunks equals the output of the whole sequence (QRNN
    paper §2: the forward pass is causal). The state starts at zeros (memories and history).

    Args:
        session: an ``onnxruntime.InferenceSession`` of a file written by ``export(...,
            with_state=True)``.
        batch_size: B, sequences in the stream (fixed for its life).

    Attributes:
        state: ``{input name: numpy array}`` — the state the next call feeds; ``h_n`` the last
            call's final outputs (L, B, H_out), None before the first call.

    Raises:
        ValueError: ``session`` lacks the inputs ``input`` and ``c_0`` (not exported with the state).

    Example::

        >>> import numpy as np, torch, quasirnn, quasirnn.onnx
        >>> import onnxruntime as ort
        >>> qrnn = quasirnn.QRNN(4, 8, 2, window=2).eval()
        >>> program = quasirnn.onnx.export(qrnn, (torch.randn(6, 2, 4),), with_state=True)
        >>> session = ort.InferenceSession(program.model_proto.SerializeToString())  # or a saved file
        >>> stream = quasirnn.onnx.Stream(session, batch_size=2)
        >>> x = torch.randn(7, 2, 4)
        >>> out = [stream(x[:3].numpy()), stream(x[3:4].numpy()), stream(x[4:].numpy())]  # 3, 1, 3 steps
        >>> whole = qrnn(x)[0].detach().numpy()
        >>> bool(abs(np.concatenate(out) - whole).max() < 1e-5)
        True
    """

    def __init__(self, session, batch_size: int = 1):
        names = [i.name for i in session.get_inputs()]
        if names[:2] != ["input", "c_0"]:
            raise ValueError(f"Stream needs a session of a model exported with with_state=True (inputs 'input', "
                             f"'c_0', 'history_<l>'), got inputs {names}")
        self.session = session
        self.batch_size = int(batch_size)
        self._state_inputs = session.get_inputs()[1:]
        self._outputs = [o.name for o in session.get_outputs()]
        self.reset()

    def reset(self) -> None:
        """Starts a new stream: zero memories and history."""
        import numpy as np

        dtypes = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
        self.state = {
            i.name: np.zeros([d if isinstance(d, int) else self.batch_size for d in i.shape], dtypes[i.type])
            for i in self._state_inputs
        }
        self.h_n = None

    def __call__(self, chunk):
        results = dict(zip(self._outputs, self.session.run(None, {"input": chunk, **self.state})))
        self.state = {name: results["c_n" if name == "c_0" else name + "_n"] for name in self.state}
        self.h_n = results["h_n"]
        return results["output"]
