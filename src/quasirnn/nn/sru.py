"""The Simple Recurrent Unit (Lei, Zhang, Wang, Dai & Artzi 2017, arXiv 1709.02755) on this
package's kernels: :class:`SRULayer` (one layer, one direction) and :class:`SRU` (the stack)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_int
from ..ops import SRU_BACKENDS, forget_mult, sru_recurrence
from .stack import QRNNState, StackedRecurrent, StateLike

__all__ = ["SRU", "SRULayer"]


class SRULayer(nn.Module):
    r"""A single-direction SRU layer (Lei et al. 2017, §2, eq. 3–7).

    One projection of the input gives the candidate and both gate pre-activations for all t
    at once; only an element-wise recurrence walks time:

    .. math::
        [\tilde x_t; F_t; R_t\,(; x'_t)] = W\, \mathrm{LN}(x_t) \\
        f_t = \sigma(F_t + v_f \odot c_{t-1} + b_f), \quad
        r_t = \sigma(R_t + v_r \odot c_{t-1} + b_r) \\
        c_t = f_t \odot c_{t-1} + (1 - f_t) \odot \tilde x_t, \quad
        h_t = r_t \odot g(c_t) + (1 - r_t) \odot x'_t

    g is the identity (as in the ``sru`` package) or tanh with ``use_tanh=True`` (the 2017
    text). The highway input :math:`x'_t` is the layer input :math:`x_t` itself when
    N = H, else a fourth block of the projection. With ``recurrent_gate=False`` the gates have
    no :math:`v \odot c_{t-1}` terms (the 2017 text): the recurrence is then QRNN f-pooling of
    window 1 and runs on :func:`quasirnn.ops.forget_mult`, the gates and highway around it;
    with ``recurrent_gate=True`` (the published version, the ``sru`` package's default) it runs
    on the fused :func:`quasirnn.ops.sru_recurrence` kernel.

    Args:
        input_size: N, features per input step.
        hidden_size: H, features of the memory and output.
        highway_bias: initial value of :math:`b_r` (negative values favour the highway path
            at the start of training; the ``sru`` package suggests e.g. −2 for deep stacks).
        layer_norm: LayerNorm over the N features of the layer input before the projection
            (pre-normalisation, as the ``sru`` package's ``layer_norm=True``); the highway path
            still carries the un-normalised input.
        recurrent_gate: include the element-wise recurrent terms :math:`v \odot c_{t-1}`.
        use_tanh: g = tanh instead of the identity.
        backend: recurrence kernel: "auto", "cpu", "triton", "torch" or "reference" (see :mod:`quasirnn.ops.sru`).

    Attributes:
        linear: ``nn.Linear(N, 3H)`` without bias, output split as [x̃, F, R]; ``nn.Linear(N, 4H)``
            as [x̃, F, R, x'] when N ≠ H. Initialised U(±√(3/N)) (variance 1/N), the F and R
            rows scaled by √½.
        v: (2, H) parameter [v_f; v_r], U(±√1.5) (variance ½); None when ``recurrent_gate=False``.
        bias: (2, H) parameter [b_f; b_r], b_f = 0 and b_r = ``highway_bias`` initially.
        norm: ``nn.LayerNorm(N)``, or None without ``layer_norm``.
        window: always 1 (no input history), for the shared stack logic.

    Shapes: input (T, B, N); ``c0`` (B, H).

    Mixed precision: under ``torch.autocast`` the projection runs in 16 bits; the recurrence
    reads those outputs, with the highway input, ``v``, ``bias`` and ``c0`` cast to match, and
    accumulates in float32 (on the PyTorch kernel; the C++ kernel takes float32/float64 only).

    Raises:
        ValueError: sizes that are not positive integers, an unknown backend.
    """

    window = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        highway_bias: float = 0.0,
        layer_norm: bool = False,
        recurrent_gate: bool = True,
        use_tanh: bool = False,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            check_int(name, value)
        if backend not in SRU_BACKENDS:
            raise ValueError(f"backend must be one of {SRU_BACKENDS}, got {backend!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.highway_bias = float(highway_bias)
        self.recurrent_gate = bool(recurrent_gate)
        self.use_tanh = bool(use_tanh)
        self.backend = backend
        self.projects_highway = input_size != hidden_size
        self.linear = nn.Linear(input_size, (4 if self.projects_highway else 3) * hidden_size, bias=False)
        if self.recurrent_gate:
            self.v = nn.Parameter(torch.empty(2, hidden_size))
        else:
            self.register_parameter("v", None)
        self.bias = nn.Parameter(torch.empty(2, hidden_size))
        self.norm = nn.LayerNorm(input_size) if layer_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation described under Attributes (the ``sru`` package's variances)."""
        H = self.hidden_size
        with torch.no_grad():
            bound = math.sqrt(3.0 / self.input_size)
            self.linear.weight.uniform_(-bound, bound)
            self.linear.weight[H : 3 * H].mul_(math.sqrt(0.5))
            if self.v is not None:
                self.v.uniform_(-math.sqrt(1.5), math.sqrt(1.5))
            self.bias[0].zero_()
            self.bias[1].fill_(self.highway_bias)
        if self.norm is not None:
            self.norm.reset_parameters()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.highway_bias:
            s += f", highway_bias={self.highway_bias}"
        if not self.recurrent_gate:
            s += ", recurrent_gate=False"
        if self.use_tanh:
            s += ", use_tanh=True"
        return s

    def forward(
        self, input: Tensor, c0: Optional[Tensor] = None, prev_inputs: Optional[Tensor] = None,
        valid: Optional[Tensor] = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the layer over a whole sequence.

        Args:
            input: (T, B, N) float tensor, T ≥ 1.
            c0: (B, H) initial memory, or None for zeros.
            prev_inputs: ignored (an SRU reads no input history); accepted so that the layer
                has the calling convention of :class:`~quasirnn.QRNNLayer`.
            valid: (T, B) bool, True on each sequence's real steps (right padding), or None.
                On padded steps the forget gate is saturated to exactly 1, so the memory stays
                that of the last real step, and the output is zero.

        Returns:
            ``(output, c_last, last_inputs)``: output h (T, B, H); the final memory c_T (B, H);
            an empty (0, B, N) tensor (no input history to carry).
        """
        T, B, _ = input.shape
        H = self.hidden_size
        u = self.linear(input if self.norm is None else self.norm(input))  # (T, B, 3H or 4H)
        dtype = u.dtype  # 16-bit under torch.autocast
        pad = None if valid is None else ~valid[..., None]  # (T, B, 1)
        if pad is not None:  # σ(F + 1e4 + …) is exactly 1 in every float type: c_t = c_{t-1}
            # in place (the projection's backward does not read its output): one pass over the
            # F slice instead of a copy of all of u
            u[..., H : 2 * H].masked_fill_(pad, 1e4)
        highway = None if self.projects_highway else input.to(dtype)
        bias = self.bias.to(dtype)
        if c0 is not None:
            c0 = c0.to(dtype)
        if self.recurrent_gate:
            h, _, c_last = sru_recurrence(
                u, self.v.to(dtype), bias, c0, x=highway, use_tanh=self.use_tanh, backend=self.backend
            )
        else:
            parts = u.split(H, dim=-1)
            f = torch.sigmoid(parts[1] + bias[0])
            r = torch.sigmoid(parts[2] + bias[1])
            c = forget_mult(f, parts[0], c0, backend=self.backend)
            g = torch.tanh(c) if self.use_tanh else c
            h = torch.lerp(parts[3] if highway is None else highway, g, r)  # r ⊙ g + (1 − r) ⊙ x'
            c_last = c[-1]
        if pad is not None:
            h = h.masked_fill(pad, 0.0)
        return h, c_last, input.new_empty(0, B, self.input_size)


class SRU(StackedRecurrent):
    r"""Multi-layer Simple Recurrent Unit (Lei et al. 2017, arXiv 1709.02755): a drop-in for
    ``torch.nn.LSTM`` and :class:`~quasirnn.QRNN`.

    Each layer is an :class:`SRULayer` (see there for the equations): one projection of x_t per
    layer for all t at once, then a fused element-wise recurrence with recurrent gate terms and
    a highway connection,

    .. math::
        c_t = f_t \odot c_{t-1} + (1 - f_t) \odot \tilde x_t, \quad
        h_t = r_t \odot g(c_t) + (1 - r_t) \odot x_t.

    Args:
        input_size: N, features of the input.
        hidden_size: H, features of each layer's memory and output.
        num_layers: L, stacked layers (default 2, as the ``sru`` package).
        dropout: dropout on the outputs of every layer but the last, as in ``nn.LSTM``.
        bidirectional: D = 2 if True: a second set of layers reads the reversed sequence; the
            outputs are concatenated [forward, backward] along features (so layers above the
            first have N_l = 2H ≠ H and project their highway input).
        batch_first: input and output are (B, T, ·) instead of (T, B, ·).
        highway_bias: initial b_r of every layer.
        layer_norm: LayerNorm on each layer's input before its projection (see :class:`SRULayer`).
        recurrent_gate: the gates' element-wise recurrent terms v ⊙ c_{t−1} (published version);
            False gives the 2017 text's gates, computed on the QRNN ``forget_mult`` kernel.
        use_tanh: g = tanh (2017 text) instead of the identity (``sru`` package).
        backend: recurrence kernel ("auto", "cpu", "triton", "torch", "reference"; see :mod:`quasirnn.ops.sru`).
            "auto" takes the C++ kernel for float32/float64 on CPU, the PyTorch kernel elsewhere.
        dense, dense_output: densely connected layers, as for :class:`~quasirnn.QRNN` (QRNN
            paper §2.1): layer l reads ``[input, h^1, …, h^{l−1}]``; the output is the whole
            concatenation (``"concat"``) or h^L (``"last"``).

    Inputs: ``input, hx``
        * **input**: (T, B, N), (B, T, N) with ``batch_first``, or unbatched (T, N); float.
        * **hx**: None (zero memories), a tensor (L·D, B, H) of initial memories, or the
          :class:`~quasirnn.QRNNState` returned by a previous call (continues that sequence
          exactly) — the same forms a QRNN accepts.

        * **lengths**: optional (B,) integer tensor (or list) of each sequence's real length in a
          right-padded batch, 1 ≤ length ≤ T. Each sequence's output, final memory and input
          history are then exactly what it gives alone (the backward direction starts at its own
          last element); padded outputs are zero. ``input`` may instead be a
          ``torch.nn.utils.rnn.PackedSequence`` (output packed alike), as for ``nn.LSTM``.

    Outputs: ``output, state``
        * **output**: (T, B, D·H) (or (B, T, D·H) with ``batch_first``, (T, D·H) unbatched): the
          last layer's h_t, for every t.
        * **state**: a :class:`~quasirnn.QRNNState` whose ``c`` holds the final memories
          (L·D, B, H) and whose ``inputs`` are empty (0, B, N_l) tensors: an SRU needs no input
          history. Code written for a QRNN's state works unchanged.

    The forward direction is causal: running ``x[:t]`` and then ``x[t:]`` with the returned
    state equals running ``x`` at once (unidirectional).

    Attributes:
        layers: ``nn.ModuleList`` of L·D :class:`SRULayer`, index ``l * D + d``, each with its
            ``linear`` projection, ``v`` (2, H), ``bias`` (2, H) and optional ``norm``.

    Raises:
        ValueError: invalid sizes or options; input or ``hx`` of the wrong shape.
        TypeError: input that is not a floating-point tensor.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        bidirectional: bool = False,
        batch_first: bool = False,
        highway_bias: float = 0.0,
        layer_norm: bool = False,
        recurrent_gate: bool = True,
        use_tanh: bool = False,
        *,
        backend: str = "auto",
        dense: bool = False,
        dense_output: str = "concat",
    ) -> None:
        super().__init__()
        layer_inputs = self._init_stack(input_size, hidden_size, num_layers, dropout, bidirectional, batch_first,
                                        dense=dense, dense_output=dense_output)
        self.highway_bias = float(highway_bias)
        self.layer_norm = bool(layer_norm)
        self.recurrent_gate = bool(recurrent_gate)
        self.use_tanh = bool(use_tanh)
        self.window = 1
        self.layers = nn.ModuleList(
            SRULayer(n, hidden_size, highway_bias, layer_norm, recurrent_gate, use_tanh, backend=backend)
            for n in layer_inputs
            for _ in range(self.num_directions)
        )

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, dropout={self.dropout}"
        for name in ("bidirectional", "batch_first", "layer_norm", "use_tanh"):
            if getattr(self, name):
                s += f", {name}=True"
        if not self.recurrent_gate:
            s += ", recurrent_gate=False"
        if self.highway_bias:
            s += f", highway_bias={self.highway_bias}"
        return s

    def forward(self, input, hx: StateLike = None, lengths=None):
        """Run the stack over a sequence; see the class docstring for shapes (``input`` may be
        a ``PackedSequence``, or a padded batch with ``lengths`` (B,), as for a QRNN)."""
        return super().forward(input, hx, lengths)
