"""The multi-layer, optionally bidirectional QRNN: a drop-in for ``torch.nn.LSTM``."""

from __future__ import annotations

from typing import NamedTuple, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .qrnn_layer import QRNNLayer


class QRNNState(NamedTuple):
    """Everything a QRNN needs to continue a sequence exactly where a previous call stopped.

    Attributes:
        c: (L·D, B, H) the final memory c_T of every layer and direction, ordered like
            ``nn.LSTM``'s ``h_n`` (layer 0 forward, layer 0 backward, layer 1 forward, …). For
            f-pooling this is also the last output h_T; for fo/ifo pooling h_T = o_T ⊙ c_T.
        inputs: tuple of L·D tensors (k−1, B, N_l): the last window−1 inputs each layer read
            (its convolution's history), oldest first; N_l is ``input_size`` for layer 0 and
            D·H above (``input_size + l·D·H`` for layer l ≥ 0 with ``dense=True``). Empty
            (0, B, N_l) when ``window == 1``. Backward directions always start a sequence from
            zero history, so their entries are ignored when passed back.

    Unbatched input gives c (L·D, H) and inputs (k−1, N_l).
    """

    c: Tensor
    inputs: tuple[Tensor, ...]

    def detach(self) -> "QRNNState":
        """The same state cut from the autograd graph (truncated backpropagation through time)."""
        return QRNNState(self.c.detach(), tuple(x.detach() for x in self.inputs))


StateLike = Union[None, Tensor, QRNNState, tuple]


class QRNN(nn.Module):
    r"""Multi-layer Quasi-Recurrent Neural Network (Bradbury, Merity, Xiong & Socher 2016).

    Each layer is a :class:`QRNNLayer`: a causal convolution of width ``window`` over time that
    produces the candidate and gates, then recurrent pooling (paper §2, eq. 1–5):

    .. math::
        z_t = \tanh(W_z * X),\ f_t = \sigma(W_f * X),\ o_t = \sigma(W_o * X) \\
        c_t = f_t \odot c_{t-1} + (1 - f_t) \odot z_t, \quad h_t = o_t \odot c_t \quad\text{(fo-pooling)}

    Constructor names follow ``torch.nn.LSTM`` so swapping one for the other is one line.

    Args:
        input_size: N, features of the input.
        hidden_size: H, features of each layer's memory and output.
        num_layers: L, stacked layers.
        window: k, convolution width in time steps (k = 1: gates see only x_t; the paper's LM
            used k = 2 in the first layer); an int for every layer, or a sequence of
            ``num_layers`` widths, one per layer (e.g. ``(2, 1, 1, 1)``).
        pooling: "f", "fo" (default) or "ifo" (§2).
        zoneout: probability that a channel keeps its previous memory at a step during
            training (§2.1: forget gate forced to 1, and for ifo the input gate to 0); 0 disables it.
        dropout: dropout on the outputs of every layer but the last, as in ``nn.LSTM``.
        bidirectional: D = 2 if True: a second set of layers reads the reversed sequence; the
            outputs are concatenated [forward, backward] along features.
        batch_first: input and output are (B, T, ·) instead of (T, B, ·).
        bias: whether the gate projections have biases.
        backend: pooling kernel ("auto", "cpu", "triton", "torch", "reference"; see
            :mod:`quasirnn.ops`). "auto" takes the Triton kernels on CUDA, the C++ kernel on CPU.
        dense: densely connected layers (§2.1, after DenseNet, Huang et al. 2016): layer l reads
            the concatenation along features ``[input, h^1, …, h^{l−1}]`` of the input and the
            outputs of all previous layers, so its ``layer_input_size`` is ``N + (l−1)·D·H``
            (l counted from 1); each layer keeps the usual ``linear`` layout. With ``dropout``,
            the outputs of every layer but the last are dropped before they join the
            concatenation (so every later layer and the output see the same mask).
        dense_output: with ``dense=True``, what the module returns: ``"concat"`` (default),
            the full concatenation ``[input, h^1, …, h^L]``, (T, B, N + L·D·H); or ``"last"``,
            the last layer's h^L alone, (T, B, D·H), as without ``dense``. ``"concat"`` is the
            default because §2.1 describes a dense layer as concatenating its input to its
            output along channels and takes "the output of the last layer" as the encoder's
            result: that output is the full concatenation, and it hands a classifier on top
            (§3.1) the embeddings and every layer's features directly.

    Inputs: ``input, hx``
        * **input**: (T, B, N), (B, T, N) with ``batch_first``, or unbatched (T, N); float.
        * **hx**: None (zero memories, zero history), a tensor (L·D, B, H) of initial memories,
          or the :class:`QRNNState` returned by a previous call (continues that sequence exactly).

    Outputs: ``output, state``
        * **output**: (T, B, D·H) (or (B, T, D·H) with ``batch_first``, (T, D·H) unbatched): the
          last layer's h_t, for every t. With ``dense=True`` and ``dense_output="concat"`` the
          feature size is N + L·D·H instead (see ``output_size``).
        * **state**: :class:`QRNNState` (final memories and convolution history).

    The forward direction is causal: output t depends on inputs 1..t only. Running ``x[:t]``
    and then ``x[t:]`` with the returned state equals running ``x`` at once (unidirectional).

    Attributes:
        layers: ``nn.ModuleList`` of L·D :class:`QRNNLayer`, index ``l * D + d``; each holds the
            ``linear`` gate projection of that layer and direction.
        output_size: the feature size of ``output``.

    Raises:
        ValueError: invalid sizes or options; input or ``hx`` of the wrong shape.
        TypeError: input that is not a floating-point tensor.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        window: Union[int, Sequence[int]] = 1,
        pooling: str = "fo",
        zoneout: float = 0.0,
        dropout: float = 0.0,
        bidirectional: bool = False,
        batch_first: bool = False,
        bias: bool = True,
        *,
        backend: str = "auto",
        dense: bool = False,
        dense_output: str = "concat",
    ) -> None:
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        if dense_output not in ("concat", "last"):
            raise ValueError(f"dense_output must be 'concat' or 'last', got {dense_output!r}")
        windows = list(window) if isinstance(window, (list, tuple)) else [window] * num_layers
        if len(windows) != num_layers:
            raise ValueError(f"window must be an int or one width per layer ({num_layers}), got {window!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.window = tuple(windows) if isinstance(window, (list, tuple)) else window
        self.pooling = pooling
        self.zoneout = zoneout
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.batch_first = bool(batch_first)
        self.num_directions = 2 if bidirectional else 1
        self.dense = bool(dense)
        self.dense_output = dense_output
        DH = self.num_directions * hidden_size
        if self.dense:
            layer_inputs = [input_size + l * DH for l in range(num_layers)]
            self.output_size = input_size + num_layers * DH if dense_output == "concat" else DH
        else:
            layer_inputs = [input_size] + [DH] * (num_layers - 1)
            self.output_size = DH
        self.layers = nn.ModuleList(
            QRNNLayer(n, hidden_size, k, pooling, zoneout, bias, backend=backend)
            for n, k in zip(layer_inputs, windows)
            for _ in range(self.num_directions)
        )

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, window={self.window}"
        s += f", pooling={self.pooling!r}, zoneout={self.zoneout}, dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dense:
            s += f", dense=True, dense_output={self.dense_output!r}"
        return s

    # ------------------------------------------------------------------ input checking

    def _check_input(self, input) -> bool:
        """Validate ``input``; returns True if it is batched."""
        if not isinstance(input, Tensor):
            raise TypeError(f"QRNN input must be a torch.Tensor, got {type(input).__name__}")
        if not input.is_floating_point():
            raise TypeError(f"QRNN input must be a floating-point tensor, got dtype {input.dtype}")
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            layout = "(B, T, N)" if self.batch_first else "(T, B, N)"
            raise ValueError(
                f"QRNN input must have shape {layout} or unbatched (T, N) with N = input_size = "
                f"{self.input_size}, got shape {tuple(input.shape)}"
            )
        time_dim = 1 if (self.batch_first and input.dim() == 3) else 0
        if input.shape[time_dim] == 0:
            raise ValueError("QRNN input must have at least one time step (T >= 1)")
        return input.dim() == 3

    def _parse_hx(self, hx: StateLike, batch: int, batched: bool, like: Tensor):
        """Returns (list of c0 or None, list of prev_inputs or None), one entry per layer and direction."""
        n = self.num_layers * self.num_directions
        if hx is None:
            return [None] * n, [None] * n
        if isinstance(hx, Tensor):
            c, inputs = hx, None
        elif isinstance(hx, tuple) and len(hx) == 2:
            c, inputs = hx
        else:
            raise TypeError("hx must be None, a tensor of initial memories, or the QRNNState of a previous call")
        if not batched:
            c = c.unsqueeze(1) if isinstance(c, Tensor) else c
            inputs = None if inputs is None else tuple(x.unsqueeze(1) for x in inputs)
        expected = (n, batch, self.hidden_size)
        if not isinstance(c, Tensor) or tuple(c.shape) != expected:
            got = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
            raise ValueError(f"hx memories must have shape (num_layers*D, B, H) = {expected}, got {got}")
        c = c.to(like.dtype)
        prev = [None] * n
        if inputs is not None:
            if len(inputs) != n:
                raise ValueError(f"hx.inputs must hold {n} tensors (one per layer and direction), got {len(inputs)}")
            for idx, x in enumerate(inputs):
                layer = self.layers[idx]
                want = (layer.window - 1, batch, layer.input_size)
                if tuple(x.shape) != want:
                    raise ValueError(f"hx.inputs[{idx}] must have shape (window-1, B, N_l) = {want}, got {tuple(x.shape)}")
                prev[idx] = x.to(like.dtype) if idx % self.num_directions == 0 and layer.window > 1 else None
        return list(c.unbind(0)), prev

    # ------------------------------------------------------------------ forward

    def forward(self, input: Tensor, hx: StateLike = None) -> tuple[Tensor, QRNNState]:
        """Run the stack over a sequence; see the class docstring for shapes."""
        batched = self._check_input(input)
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        c0s, prevs = self._parse_hx(hx, x.shape[1], batched, x)
        D = self.num_directions
        finals, histories = [], []
        features = [x]  # dense: the input and every layer's output so far
        for layer_idx in range(self.num_layers):
            outputs = []
            for d in range(D):
                idx = layer_idx * D + d
                layer = self.layers[idx]
                if d == 0:
                    h, c_last, last_inputs = layer(x, c0s[idx], prevs[idx])
                else:
                    h, c_last, last_inputs = layer(x.flip(0), c0s[idx], None)
                    h = h.flip(0)
                outputs.append(h)
                finals.append(c_last)
                histories.append(last_inputs)
            x = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)
            if self.dropout > 0 and self.training and layer_idx < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
            if self.dense and (layer_idx < self.num_layers - 1 or self.dense_output == "concat"):
                features.append(x)
                x = torch.cat(features, dim=-1)
        c = torch.stack(finals)
        inputs = tuple(histories)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        if not batched:
            x, c, inputs = x.squeeze(1), c.squeeze(1), tuple(h.squeeze(1) for h in inputs)
        return x, QRNNState(c, inputs)
