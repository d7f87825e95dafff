"""The Simple Recurrent Unit (Lei, Zhang, Wang, Dai & Artzi 2017, arXiv 1709.02755) on this
package's kernels: :class:`SRU`, the stack of :class:`~quasirnn.nn.sru_layer.SRULayer` (one
layer, one direction), with the options of the ``sru`` package's ``sru.SRU``."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_int
from .sru_layer import SRU_INITS, SRULayer
from .stack import StackedRecurrent, StateLike

__all__ = ["SRU", "SRULayer", "DROPOUT_MODES", "SKIP_RULES"]

DROPOUT_MODES = ("output", "sru")
#: Which layers project their skip term x' and which read it from their input (``skip_rule``).
SKIP_RULES = ("quasirnn", "sru")


class SRU(StackedRecurrent):
    r"""Multi-layer Simple Recurrent Unit (Lei et al. 2017, arXiv 1709.02755) with the ``sru``
    package's options, in ``sru.SRU``'s positional order.

    Each layer is an :class:`SRULayer` per direction (see there for the equations): one
    projection of x_t per layer for all t at once, then a fused element-wise recurrence with
    recurrent gate terms and a highway connection,

    .. math::
        c_t = f_t \odot c_{t-1} + (1 - f_t) \odot \tilde x_t, \quad
        h_t = r_t \odot g(c_t) + (1 - r_t) \odot x'_t.

    :func:`quasirnn.convert.from_sru` turns an ``sru.SRU`` into an equal ``SRU``; it sets
    ``skip_rule="sru"``, ``dropout_mode="sru"`` and ``init="sru"``, which make this module
    compute, train and initialise as ``sru.SRU`` does.

    Args:
        input_size: N, features of the input.
        hidden_size: H, features of each layer's memory and output (per direction).
        num_layers: L, stacked layers (default 2, as the ``sru`` package).
        dropout: with ``dropout_mode="output"`` (default) dropout on the outputs of every layer
            but the last, as in ``nn.LSTM``; with ``"sru"`` the ``sru`` package's dropout inside
            every layer but the last (one mask per sequence on r ⊙ (g − x'), the skip term
            undropped; ``layers[i].dropout``).
        rnn_dropout: ``sru``'s deprecated variational dropout on each layer's projection input.
        bidirectional: D = 2 if True: a second set of layers reads the reversed sequence; the
            outputs are concatenated [forward, backward] along features.
        projection_size: P > 0 factors each layer's projection through P features, in the
            layers where 0 < P < N_l and P < D·H (``sru``'s rule); 0 for none.
        use_tanh: g = tanh (2017 text) instead of the identity (``sru`` package).
        layer_norm: LayerNorm on each layer's input before its projection (``layers[i].norm``),
            or, with ``normalize_after``, on each layer's output (``output_norms[l]``, over the
            D·H concatenated features).
        highway_bias: initial b_r of every layer.
        has_skip_term: the skip (highway) term (1 − r) ⊙ x'; False gives h = r ⊙ g(c).
        rescale: scale identity skip terms by √(1 + 2·e^{highway_bias}) (``sru``'s ``rescale``).
        v1: ``sru``'s v1 gates, without recurrent terms: the same as ``recurrent_gate=False``.

    Keyword-only args:
        batch_first: input and output are (B, T, ·) instead of (T, B, ·).
        recurrent_gate: the gates' element-wise recurrent terms v ⊙ c_{t−1} (published version);
            False gives the 2017 text's gates, computed on the QRNN ``forget_mult`` kernel.
            None (default): ``not v1``; ``v1=True`` with ``recurrent_gate=True`` raises ValueError.
        normalize_after: with ``layer_norm``, normalise each layer's output instead of its input.
        weight_c_init: v starts U(±weight_c_init) instead of U(±√1.5).
        proj_input_to_hidden_first: when N ≠ D·H, a bias-free ``input_to_hidden`` linear
            (N → D·H) before the first layer (``sru``'s option of the same name).
        skip_rule: which layers project their skip term x' (``layers[i].skip_term``): "quasirnn"
            (default, or None) those with N_l ≠ H; "sru" those with N_l ≠ D·H, the others reading,
            per direction d, input features [d·H, (d+1)·H) (the ``sru`` package's bidirectional
            layer). ``highway``, its former name, is still accepted.
        dropout_mode: "output" or "sru", see ``dropout``.
        init: "quasirnn" or "sru" (the ``sru`` package's extra initialisation rules; see
            :class:`SRULayer`).
        backend: recurrence kernel ("auto", "cpu", "triton", "torch", "reference"; see :mod:`quasirnn.ops.backends`).
        dense, dense_output: densely connected layers, as for :class:`~quasirnn.QRNN` (QRNN
            paper §2.1): layer l reads ``[input, h^1, …, h^{l−1}]``; the output is the whole
            concatenation (``"concat"``) or h^L (``"last"``).
        device, dtype: factory arguments of the parameters, as for ``nn.LSTM``.

    Inputs: ``input, hx, lengths``
        * **input**: (T, B, N), (B, T, N) with ``batch_first``, or unbatched (T, N); float; or
          a ``torch.nn.utils.rnn.PackedSequence`` (output packed alike), as for ``nn.LSTM``.
        * **hx**: None (zero memories), a tensor (L·D, B, H) of initial memories, or the
          :class:`~quasirnn.RecurrentState` returned by a previous call (continues that sequence
          exactly) — the same forms a QRNN accepts.
        * **lengths**: optional (B,) integer tensor (or list) of each sequence's real length in a
          right-padded batch, 1 ≤ length ≤ T. Each sequence's output and final memory are then
          exactly what it gives alone (the backward direction starts at its own last element);
          padded outputs are zero.

    Outputs: ``output, state``
        * **output**: (T, B, D·H) (or (B, T, D·H) with ``batch_first``, (T, D·H) unbatched): the
          last layer's h_t, for every t.
        * **state**: a :class:`~quasirnn.RecurrentState` whose ``c`` holds the final memories
          (L·D, B, H) and whose ``inputs`` are empty (0, B, N_l) tensors: an SRU needs no input
          history. Code written for a QRNN's state works unchanged.

    The forward direction is causal: running ``x[:t]`` and then ``x[t:]`` with the returned
    state equals running ``x`` at once (unidirectional).

    Attributes:
        layers: ``nn.ModuleList`` of L·D :class:`SRULayer`, index ``l * D + d``, each with its
            ``linear`` projection, optional ``proj``, ``v`` (2, H), ``bias`` (2, H), optional
            ``norm`` and ``scale_x``.
        output_norms: ``nn.ModuleList`` of L ``nn.LayerNorm(D·H)`` with ``normalize_after``, else None.
        input_to_hidden: ``nn.Linear(N, D·H, bias=False)`` or None.

    Raises:
        ValueError: invalid sizes or options; input or ``hx`` of the wrong shape.
        TypeError: input that is not a floating-point tensor.

    Example::

        >>> sru = SRU(8, 16, 2, 0.1, bidirectional=True, skip_rule="sru", dropout_mode="sru")
        >>> out, state = sru(torch.randn(5, 3, 8))
        >>> out.shape, state.c.shape
        (torch.Size([5, 3, 32]), torch.Size([4, 3, 16]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        rnn_dropout: float = 0.0,
        bidirectional: bool = False,
        projection_size: int = 0,
        use_tanh: bool = False,
        layer_norm: bool = False,
        highway_bias: float = 0.0,
        has_skip_term: bool = True,
        rescale: bool = False,
        v1: bool = False,
        *,
        batch_first: bool = False,
        recurrent_gate: Optional[bool] = None,
        normalize_after: bool = False,
        weight_c_init: Optional[float] = None,
        proj_input_to_hidden_first: bool = False,
        skip_rule: Optional[str] = None,
        dropout_mode: str = "output",
        init: str = "quasirnn",
        backend: str = "auto",
        dense: bool = False,
        dense_output: str = "concat",
        device=None,
        dtype=None,
        highway: Optional[str] = None,
    ) -> None:
        super().__init__()
        rule_name = "skip_rule"
        if highway is not None:  # the former name
            if skip_rule is not None:
                raise ValueError("give skip_rule or its former name highway, not both")
            rule_name, skip_rule = "highway", highway
        skip_rule = "quasirnn" if skip_rule is None else skip_rule
        for name, value, allowed in ((rule_name, skip_rule, SKIP_RULES), ("dropout_mode", dropout_mode, DROPOUT_MODES),
                                     ("init", init, SRU_INITS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if recurrent_gate is None:
            recurrent_gate = not v1
        elif recurrent_gate and v1:
            raise ValueError(f"v1={v1} contradicts recurrent_gate={recurrent_gate} (v1 means no recurrent gate terms)")
        check_int("projection_size", projection_size, minimum=0)
        layer_inputs = self._init_stack(input_size, hidden_size, num_layers, dropout, bidirectional, batch_first,
                                        dense=dense, dense_output=dense_output)
        D, DH = self.num_directions, self.num_directions * hidden_size
        self.input_to_hidden = None
        if proj_input_to_hidden_first and input_size != DH:
            if dense:
                raise ValueError("proj_input_to_hidden_first does not combine with dense=True")
            self.input_to_hidden = nn.Linear(input_size, DH, bias=False, device=device, dtype=dtype)
            layer_inputs[0] = DH
        self.highway_bias = float(highway_bias)
        self.layer_norm = bool(layer_norm)
        self.normalize_after = bool(normalize_after)
        self.recurrent_gate = bool(recurrent_gate)
        self.v1 = not self.recurrent_gate
        self.use_tanh = bool(use_tanh)
        self.has_skip_term = bool(has_skip_term)
        self.rescale = bool(rescale)
        self.projection_size = projection_size
        self.rnn_dropout = float(rnn_dropout)
        self.skip_rule = skip_rule
        self.dropout_mode = dropout_mode
        self.init = init
        self.window = 1
        self.layer_dropout = layer_dropout = self.dropout if dropout_mode == "sru" else 0.0
        if dropout_mode == "sru":
            self.dropout = 0.0  # no dropout between layers: it lives inside them (layers[i].dropout)
        pre_norm = self.layer_norm and not self.normalize_after
        layers = []
        for l, n in enumerate(layer_inputs):
            for d in range(D):
                if not self.has_skip_term:
                    rule = "none"
                elif skip_rule == "sru":
                    rule = "identity" if n == DH else "projection"
                else:
                    rule = "identity" if n == hidden_size else "projection"
                layers.append(SRULayer(
                    n, hidden_size, highway_bias, pre_norm, self.recurrent_gate, use_tanh,
                    skip_term=rule, direction=d if (rule == "identity" and n == DH) else 0, rescale=rescale,
                    projection_size=projection_size if 0 < projection_size < min(n, DH) else 0,
                    dropout=layer_dropout if l + 1 < num_layers else 0.0, rnn_dropout=rnn_dropout,
                    weight_c_init=weight_c_init, init=init, backend=backend, device=device, dtype=dtype,
                ))
        self.layers = nn.ModuleList(layers)
        self.output_norms = None
        if self.layer_norm and self.normalize_after:
            self.output_norms = nn.ModuleList(nn.LayerNorm(DH, device=device, dtype=dtype) for _ in range(num_layers))
        if self.init == "sru" and self.output_norms is not None:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every layer (see :class:`SRULayer`), the output norms and ``input_to_hidden``;
        with ``init="sru"`` and ``normalize_after`` the projections × 0.1, as the ``sru`` package."""
        for layer in self.layers:
            layer.reset_parameters()
            if self.init == "sru" and self.output_norms is not None:
                with torch.no_grad():
                    layer.linear.weight.mul_(0.1)
        for norm in self.output_norms or ():
            norm.reset_parameters()
        if self.input_to_hidden is not None:
            self.input_to_hidden.reset_parameters()

    def _between_layers(self, index: int, x: Tensor, valid: Optional[Tensor]) -> Tensor:
        """``input_to_hidden`` before the first layer; ``output_norms[index − 1]`` after a layer
        (padded steps set back to zero)."""
        if index == 0:
            return x if self.input_to_hidden is None else self.input_to_hidden(x)
        if self.output_norms is None:
            return x
        x = self.output_norms[index - 1](x)
        return x if valid is None else x.masked_fill(~valid[..., None], 0.0)

    def extra_repr(self) -> str:
        dropout = self.layer_dropout if self.dropout_mode == "sru" else self.dropout
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, dropout={dropout}"
        for name in ("bidirectional", "batch_first", "layer_norm", "normalize_after", "use_tanh", "rescale"):
            if getattr(self, name):
                s += f", {name}=True"
        if not self.recurrent_gate:
            s += ", recurrent_gate=False"
        if not self.has_skip_term:
            s += ", has_skip_term=False"
        if self.highway_bias:
            s += f", highway_bias={self.highway_bias}"
        for name, default in (("projection_size", 0), ("rnn_dropout", 0.0), ("skip_rule", "quasirnn"),
                              ("dropout_mode", "output"), ("init", "quasirnn")):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    def forward(self, input, hx: StateLike = None, lengths=None):
        """Run the stack over a sequence; see the class docstring for shapes (``input`` may be
        a ``PackedSequence``, or a padded batch with ``lengths`` (B,), as for a QRNN)."""
        return super().forward(input, hx, lengths)
