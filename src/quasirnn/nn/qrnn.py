"""The multi-layer, optionally bidirectional QRNN: a drop-in for ``torch.nn.LSTM``."""

from __future__ import annotations

from torch import nn

from .qrnn_layer import QRNNLayer
from .stack import QRNNState, RecurrentState, StackedRecurrent, StateLike
from .windows import Windows, resolve_windows

__all__ = ["QRNN", "QRNNState", "RecurrentState", "StateLike"]


class QRNN(StackedRecurrent):
    r"""Multi-layer Quasi-Recurrent Neural Network (Bradbury, Merity, Xiong & Socher 2016).

    Each layer is a :class:`QRNNLayer`: a causal convolution of width ``window`` over time that
    produces the candidate and gates, then recurrent pooling (paper §2, eq. 1–5):

    .. math::
        z_t = \tanh(W_z * X),\ f_t = \sigma(W_f * X),\ o_t = \sigma(W_o * X) \\
        c_t = f_t \odot c_{t-1} + (1 - f_t) \odot z_t, \quad h_t = o_t \odot c_t \quad\text{(fo-pooling)}

    The first eight parameters are ``torch.nn.LSTM``'s, in its order and meaning, and the state
    unpacks as ``(h_n, c_n)``, so code written for ``nn.LSTM`` runs with ``QRNN`` swapped in:

    =======================  ==================================  ==========================================
    argument                 ``nn.LSTM``                         ``QRNN``
    =======================  ==================================  ==========================================
    positional 1–8           input_size, hidden_size,            the same, same meaning
                             num_layers, bias, batch_first,
                             dropout, bidirectional, proj_size
    ``device``, ``dtype``    factory arguments                   the same
    returned state           ``(h_n, c_n)``                      :class:`RecurrentState`: unpacks as
                                                                 ``(h_n, c_n)``, same shapes, plus
                                                                 ``.inputs`` (convolution history)
    ``hx=(h_0, c_0)``        initial hidden and cell state       c_0 = initial memories (zero history);
                                                                 h_0 shape-checked and ignored (no
                                                                 recurrent weights; warns once if ≠ 0)
    ``hx=state``             continues the sequence              continues exactly, history included
    QRNN only (keyword)      —                                   window, pooling, zoneout, zoneout_eval,
                                                                 dense, dense_output, backend
    =======================  ==================================  ==========================================

    Args:
        input_size: N, features of the input.
        hidden_size: H, features of each layer's memory and output.
        num_layers: L, stacked layers.
        bias: whether the gate projections have biases.
        batch_first: input and output are (B, T, ·) instead of (T, B, ·).
        dropout: dropout on the outputs of every layer but the last, as in ``nn.LSTM``.
        bidirectional: D = 2 if True: a second set of layers reads the reversed sequence; the
            outputs are concatenated [forward, backward] along features.
        proj_size: P > 0 projects each layer's output to P features with a bias-free linear map
            (``layers[i].proj``), as ``nn.LSTM``: output (T, B, D·P), h_n (L·D, B, P), c_n stays
            (L·D, B, H); 0 (default): none.
        window: k, convolution width in time steps (k = 1: gates see only x_t; the paper's LM
            used k = 2 in the first layer); an int for every layer, or a sequence of
            ``num_layers`` widths, one per layer (e.g. ``(2, 1, 1, 1)``).
        pooling: "f", "fo" (default) or "ifo" (§2).
        zoneout: probability that a channel keeps its previous memory at a step during
            training (§2.1: forget gate forced to 1, and for ifo the input gate to 0); 0 disables it.
        zoneout_eval: at evaluation, scale by zoneout's expected keep-mask 1 − p
            (f = 1 − (1 − p)(1 − f)), as salesforce pytorch-qrnn does; default False.
        backend: pooling kernel ("auto", "cpu", "triton", "torch", "reference"; see
            :mod:`quasirnn.ops.backends`). "auto" takes the Triton kernels on CUDA, the numba kernel on CPU.
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
        device, dtype: factory arguments of the parameters, as for ``nn.LSTM``.

    Inputs: ``input, hx``
        * **input**: (T, B, N), (B, T, N) with ``batch_first``, or unbatched (T, N); float.
        * **hx**: None (zero memories, zero history), a tensor (L·D, B, H) of initial memories,
          the :class:`RecurrentState` returned by a previous call (continues that sequence exactly;
          the legacy ``(c, inputs)`` form too), or ``nn.LSTM``'s ``(h_0, c_0)``: c_0 (L·D, B, H)
          the initial memories with zero input history; h_0 (L·D, B, H_out) is checked for its
          shape and ignored (a QRNN has no recurrent weights on h), with a one-time warning if
          it is non-zero.

        * **lengths**: optional (B,) integer tensor (or list) of each sequence's real length in a
          right-padded batch, 1 ≤ length ≤ T. Each sequence's output, final memory and input
          history are then exactly what it gives alone (the backward direction starts at its own
          last element); padded outputs are zero. ``input`` may instead be a
          ``torch.nn.utils.rnn.PackedSequence`` (output packed alike), as for ``nn.LSTM``.

    Outputs: ``output, state``
        * **output**: (T, B, D·H) (or (B, T, D·H) with ``batch_first``, (T, D·H) unbatched): the
          last layer's h_t, for every t. With ``dense=True`` and ``dense_output="concat"`` the
          feature size is N + L·D·H instead (see ``output_size``).
        * **state**: :class:`RecurrentState`, unpacking as ``(h_n, c_n)``: h_n (L·D, B, H_out) the
          last output of every layer and direction (each sequence's own last one with
          ``lengths``; t = 0 for a backward direction), c_n (L·D, B, H) the last memories; its
          ``inputs`` attribute holds the convolution history.

    Example::

        >>> import torch
        >>> from quasirnn import QRNN
        >>> rnn = QRNN(10, 20, 2, window=2)          # was: nn.LSTM(10, 20, 2)
        >>> output, (h_n, c_n) = rnn(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape, c_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]), torch.Size([2, 3, 20]))

    The forward direction is causal: output t depends on inputs 1..t only. Running ``x[:t]``
    and then ``x[t:]`` with the returned state equals running ``x`` at once (unidirectional).

    Attributes:
        layers: ``nn.ModuleList`` of L·D :class:`QRNNLayer`, index ``l * D + d``; each holds the
            ``linear`` gate projection of that layer and direction.
        output_size: the feature size of ``output``.

    Raises:
        ValueError: invalid sizes or options; input or ``hx`` of the wrong shape.
        TypeError: input that is not a floating-point tensor.
        RuntimeError: ``torch.jit.script`` of the module (unsupported: use ``torch.export`` or ONNX).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        window: Windows = 1,
        pooling: str = "fo",
        zoneout: float = 0.0,
        zoneout_eval: bool = False,
        backend: str = "auto",
        dense: bool = False,
        dense_output: str = "concat",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        layer_inputs = self._init_stack(input_size, hidden_size, num_layers, dropout, bidirectional, batch_first,
                                        dense=dense, dense_output=dense_output, proj_size=proj_size)
        windows = resolve_windows(window, num_layers)
        self.window = window if isinstance(window, int) else windows
        self.pooling = pooling
        self.zoneout = zoneout
        self.zoneout_eval = bool(zoneout_eval)
        self.layers = nn.ModuleList(
            QRNNLayer(n, hidden_size, k, pooling, zoneout, bias, backend=backend, proj_size=proj_size,
                      zoneout_eval=zoneout_eval, device=device, dtype=dtype)
            for n, k in zip(layer_inputs, windows)
            for _ in range(self.num_directions)
        )

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, window={self.window}"
        s += f", pooling={self.pooling!r}, zoneout={self.zoneout}, dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.zoneout_eval:
            s += ", zoneout_eval=True"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dense:
            s += f", dense=True, dense_output={self.dense_output!r}"
        return s
