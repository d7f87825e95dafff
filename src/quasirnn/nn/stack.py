"""What every multi-layer, optionally bidirectional stack of this package shares (QRNN, SRU):
the constructor's ``nn.LSTM``-style options, input and ``hx`` checking, the loop over layers and
directions, and the :class:`RecurrentState` it returns."""

from __future__ import annotations

import warnings
from typing import Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from quasirnn._checks import check_int, check_probability, check_proj_size
from quasirnn.nn.lengths import check_lengths, reverse_index, valid_mask
from quasirnn.nn.packing import packed_layout, repack, unpack


class RecurrentState(tuple):
    """The state a QRNN or an SRU returns: unpacks as ``nn.LSTM``'s ``(h_n, c_n)`` and also carries
    the convolution history, so that passing it back as ``hx`` continues the sequence exactly.
    ``QRNNState``, its name before the SRU returned it too, is the same class.

    ``output, (h_n, c_n) = qrnn(x)`` works as for ``nn.LSTM``; ``qrnn(x2, state)`` continues from
    the memories *and* the input history of the previous call.

    Attributes:
        h: (L·D, B, H_out) the last output h_T of every layer and direction (``h_n``), ordered
            like ``nn.LSTM`` (layer 0 forward, layer 0 backward, layer 1 forward, …); with
            ``lengths`` each sequence's own last output; a backward direction's is its output at
            t = 0. H_out is ``proj_size`` when set, else H. None for a state built the legacy way.
        c: (L·D, B, H) the final memory c_T of every layer and direction (``c_n``).
        inputs: tuple of L·D tensors (k−1, B, N_l): the last window−1 inputs each layer read
            (its convolution's history), oldest first; N_l is ``input_size`` for layer 0 and
            D·H_out above (``input_size + l·D·H_out`` with ``dense=True``). Empty (0, B, N_l)
            when ``window == 1``, as always for an SRU. Backward directions always start a
            sequence from zero history, so their entries are ignored when passed back. Not
            part of the 2-tuple: ``tuple(state) == (h, c)``.

    Unbatched input gives h (L·D, H_out), c (L·D, H) and inputs (k−1, N_l).

    Construction: ``RecurrentState(h, c, inputs)``; the legacy form ``RecurrentState(c, inputs)``
    (or ``RecurrentState(c=c, inputs=inputs)``) of earlier versions, with ``inputs`` a tuple, still
    works and gives ``h = None``. The class is registered with
    ``torch.serialization.add_safe_globals`` (loads under ``torch.load(weights_only=True)``, states
    saved as ``QRNNState`` included) and as a pytree node (``torch.export``).

    Example::

        >>> import torch, quasirnn
        >>> qrnn = quasirnn.QRNN(4, 8, 2, window=2)
        >>> out, (h_n, c_n) = qrnn(torch.randn(5, 3, 4))
        >>> h_n.shape, c_n.shape
        (torch.Size([2, 3, 8]), torch.Size([2, 3, 8]))
        >>> out2, state = qrnn(torch.randn(6, 3, 4), qrnn(torch.randn(5, 3, 4))[1])
    """

    def __new__(cls, h=None, c=None, inputs=()):
        if isinstance(c, (tuple, list)) and not inputs:  # legacy RecurrentState(c, inputs)
            h, c, inputs = None, h, c
        self = super().__new__(cls, (h, c))
        self.inputs = tuple(inputs)
        return self

    @classmethod
    def _of(cls, h, c, inputs: tuple) -> "RecurrentState":
        """``RecurrentState(h, c, inputs)`` without the legacy-form test (the stacks' per-call path)."""
        self = tuple.__new__(cls, (h, c))
        self.inputs = inputs
        return self

    @property
    def h(self):
        return self[0]

    @property
    def c(self):
        return self[1]

    def __reduce__(self):
        return (RecurrentState, (self[0], self[1], self.inputs))

    def __repr__(self) -> str:
        shape = lambda t: None if t is None else tuple(t.shape)  # noqa: E731
        return (f"RecurrentState(h={shape(self[0])}, c={shape(self[1])}, "
                f"inputs={[shape(x) for x in self.inputs]})")

    def apply(self, fn) -> "RecurrentState":
        """A new state with ``fn`` applied to every tensor (h, c and the history; None stays None).

        Example::

            >>> s = RecurrentState(torch.ones(1, 2, 3), torch.ones(1, 2, 3), (torch.ones(1, 2, 4),))
            >>> s.apply(lambda t: t.double()).c.dtype
            torch.float64
        """
        f = lambda t: None if t is None else fn(t)  # noqa: E731
        return RecurrentState(f(self[0]), f(self[1]), tuple(f(x) for x in self.inputs))

    def detach(self) -> "RecurrentState":
        """The same state cut from the autograd graph (truncated backpropagation through time)."""
        return self.apply(Tensor.detach)


#: The state's name before the SRU returned it too (users and saved files refer to it).
QRNNState = RecurrentState

# states pickled before the rename name the class quasirnn.nn.stack.QRNNState
torch.serialization.add_safe_globals([RecurrentState, (RecurrentState, "quasirnn.nn.stack.QRNNState")])
torch.utils._pytree.register_pytree_node(
    RecurrentState,
    lambda s: ([s[0], s[1], s.inputs], None),
    lambda children, _: RecurrentState(children[0], children[1], tuple(children[2])),
    serialized_type_name="quasirnn.QRNNState",  # the name saved torch.export programs hold: unchanged
)


StateLike = Union[None, Tensor, RecurrentState, tuple]
_warned_h0 = False  # the h_0 warning is given once per process


class StackedRecurrent(nn.Module):
    """Base of :class:`~quasirnn.QRNN` and :class:`~quasirnn.SRU`: L layers × D directions.

    A subclass calls :meth:`_init_stack` and fills ``self.layers`` (an ``nn.ModuleList`` of L·D
    layers, index ``l * D + d``). Each layer has ``input_size`` and ``window`` attributes and is
    called as ``layer(x (T, B, N_l), c0 (B, H) or None, prev_inputs (k−1, B, N_l) or None)``,
    returning ``(h (T, B, H), c_T (B, H), last_inputs (k−1, B, N_l))``.
    """

    def __prepare_scriptable__(self):
        _no_script(self._name)

    def _init_stack(
        self, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool, batch_first: bool,
        *, dense: bool = False, dense_output: str = "concat", proj_size: int = 0,
    ) -> list[int]:
        """Checks and stores the stack options; returns the input size of each layer (N, D·H, …;
        N + l·D·H for layer l with ``dense``, paper §2.1) and sets ``output_size``.

        Raises:
            ValueError: ``num_layers`` < 1 or not an integer; ``dropout`` outside [0, 1);
                ``dense_output`` not "concat" or "last"; ``proj_size`` not in [0, hidden_size).
        """
        check_int("num_layers", num_layers)
        check_probability("dropout", dropout)
        if dense_output not in ("concat", "last"):
            raise ValueError(f"dense_output must be 'concat' or 'last', got {dense_output!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.batch_first = bool(batch_first)
        self.num_directions = 2 if bidirectional else 1
        self.dense = bool(dense)
        self.dense_output = dense_output
        self.proj_size = check_proj_size(proj_size, hidden_size)
        DH = self.num_directions * (proj_size or hidden_size)
        if self.dense:
            self.output_size = input_size + num_layers * DH if dense_output == "concat" else DH
            return [input_size + l * DH for l in range(num_layers)]
        self.output_size = DH
        return [input_size] + [DH] * (num_layers - 1)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------ input checking

    def _check_input(self, input) -> bool:
        """Validate ``input``; returns True if it is batched."""
        if not isinstance(input, Tensor):
            raise TypeError(f"{self._name} input must be a torch.Tensor, got {type(input).__name__}")
        if not input.is_floating_point():
            raise TypeError(f"{self._name} input must be a floating-point tensor, got dtype {input.dtype}")
        shape = input.shape  # read once: this runs on every call of step-by-step decoding
        batched = len(shape) == 3
        if not (batched or len(shape) == 2) or shape[-1] != self.input_size:
            layout = "(B, T, N)" if self.batch_first else "(T, B, N)"
            raise ValueError(
                f"{self._name} input must have shape {layout} or unbatched (T, N) with N = input_size = "
                f"{self.input_size}, got shape {tuple(shape)}"
            )
        if shape[1 if (self.batch_first and batched) else 0] == 0:
            raise ValueError(f"{self._name} input must have at least one time step (T >= 1)")
        weight = self._modules["layers"]._modules["0"].linear.weight
        # an int8 projection (quasirnn.quantize) has a method ``weight()`` and takes float32, which it checks itself
        if isinstance(weight, Tensor) and input.dtype != weight.dtype and not torch.is_autocast_enabled(input.device.type):
            raise TypeError(f"{self._name} input has dtype {input.dtype} but its weights have {weight.dtype}: convert "
                            f"one to the other (input.to({weight.dtype}) or module.to({input.dtype})), or run "
                            f"under torch.autocast")
        return batched

    def _parse_hx(self, hx: StateLike, batch: int, batched: bool, like: Tensor):
        """Returns (list of c0 or None, list of prev_inputs or None), one entry per layer and direction.

        Accepts None, a tensor of memories, a :class:`RecurrentState`, the legacy ``(c, inputs)`` tuple
        (``inputs`` a tuple of tensors) and ``nn.LSTM``'s ``(h_0, c_0)`` (h_0 checked, ignored).
        """
        n = self.num_layers * self.num_directions
        if hx is None:
            return [None] * n, [None] * n
        h0 = None
        if isinstance(hx, RecurrentState):
            c, inputs = hx.c, hx.inputs
        elif isinstance(hx, Tensor):
            c, inputs = hx, None
        elif isinstance(hx, (tuple, list)) and len(hx) == 2 and isinstance(hx[1], (tuple, list)):
            c, inputs = hx  # the legacy RecurrentState(c, inputs), e.g. from an older checkpoint
        elif isinstance(hx, (tuple, list)) and len(hx) == 2 and isinstance(hx[1], Tensor):
            h0, c, inputs = hx[0], hx[1], None  # nn.LSTM's (h_0, c_0)
        else:
            raise TypeError("hx must be None, a tensor of initial memories, or the RecurrentState of a previous call "
                            "(or an nn.LSTM-style (h_0, c_0) pair of tensors)")
        if not batched:
            c = c.unsqueeze(1) if isinstance(c, Tensor) else c
            h0 = h0.unsqueeze(1) if isinstance(h0, Tensor) else h0
            inputs = None if inputs is None else tuple(x.unsqueeze(1) for x in inputs)
        expected = (n, batch, self.hidden_size)
        if not isinstance(c, Tensor) or tuple(c.shape) != expected:
            got = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
            raise ValueError(f"hx memories must have shape (num_layers*D, B, H) = {expected}, got {got}")
        if h0 is not None:
            self._check_h0(h0, (n, batch, self.proj_size or self.hidden_size))
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

    def _check_h0(self, h0, expected: tuple) -> None:
        """h_0 of an ``nn.LSTM``-style ``(h_0, c_0)``: shape-checked, then ignored (a QRNN or SRU has
        no recurrent weights on h); warns once per process if it holds non-zero values."""
        global _warned_h0
        if not isinstance(h0, Tensor) or tuple(h0.shape) != expected:
            got = tuple(h0.shape) if isinstance(h0, Tensor) else type(h0).__name__
            raise ValueError(f"hx h_0 must have shape (num_layers*D, B, H_out) = {expected}, got {got}")
        if _warned_h0 or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return
        if bool((h0 != 0).any()):
            _warned_h0 = True
            warnings.warn(f"{self._name} ignores h_0 of an (h_0, c_0) hx: it has no recurrent weights on h; "
                          "only c_0 (the initial memories) is used, with zero input history; pass the returned "
                          "RecurrentState itself (or its .detach()) to continue the convolution history too", stacklevel=4)

    # ------------------------------------------------------------------ forward

    def _between_layers(self, index: int, x: Tensor, valid) -> Tensor:
        """Hook: x (T, B, F) before layer 0 (``index`` 0) or after layer ``index`` − 1, directions
        concatenated; ``valid`` (T, B) or None. Identity here; the SRU's sru-package options use it."""
        return x

    def forward(self, input, hx: StateLike = None, lengths=None):
        """Run the stack over a sequence; see the class docstring for shapes.

        ``input`` may be a ``PackedSequence`` (then the output is one too, packed alike), or a
        padded batch with ``lengths`` (B,): each sequence's output and final state are then
        exactly what it gives alone; padded outputs are zero.
        """
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("give lengths or a PackedSequence, not both")
            layout = packed_layout(input)
            padded = unpack(input, layout)  # (T, B, N), batch in the original order
            if self.batch_first:
                padded = padded.transpose(0, 1)
            output, state = self.forward(padded, hx, layout.lengths)
            if self.batch_first:
                output = output.transpose(0, 1)
            return repack(output, input, layout), state
        batched = self._check_input(input)
        if lengths is not None and not batched:
            raise ValueError("lengths needs a batched input (T, B, N); an unbatched sequence has one length")
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        T, B = x.shape[:2]
        valid = rev = None
        if lengths is not None:
            lengths = check_lengths(lengths, T, B, x.device)
            valid = valid_mask(lengths, T)  # (T, B)
            rev = reverse_index(lengths, T)  # each sequence reversed within its own length
        D = self.num_directions
        n = self.num_layers * D
        c0s, prevs = ([None] * n, [None] * n) if hx is None else self._parse_hx(hx, B, batched, x)
        between = type(self)._between_layers is not StackedRecurrent._between_layers  # overridden?
        if between:
            x = self._between_layers(0, x, valid)
        finals, lasts, histories = [], [], []
        features = [x]  # dense: the input and every layer's output so far
        last_step = None if lengths is None else (lengths - 1)[None, :, None]  # (1, B, 1)
        # self.layers without Module.__getattr__ (~0.5 µs) or ModuleList's Python __iter__
        layers = list(self._modules["layers"]._modules.values())
        for layer_idx in range(self.num_layers):
            outputs = []
            for d in range(D):
                idx = layer_idx * D + d
                layer = layers[idx]
                if d == 0:
                    h, c_last, last_inputs = layer(x, c0s[idx], prevs[idx], valid)
                    lasts.append(_last(h, last_step))
                elif rev is None:
                    h, c_last, last_inputs = layer(x.flip(0), c0s[idx], None)
                    lasts.append(h[-1:])  # the backward direction ends at t = 0, as in nn.LSTM
                    h = h.flip(0)
                else:
                    h, c_last, last_inputs = layer(_take(x, rev), c0s[idx], None, valid)
                    lasts.append(_last(h, last_step))
                    h = _take(h, rev)
                outputs.append(h)
                finals.append(c_last)
                histories.append(last_inputs)
            x = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)
            if between:
                x = self._between_layers(layer_idx + 1, x, valid)
            if self.dropout > 0 and self.training and layer_idx < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
            if self.dense and (layer_idx < self.num_layers - 1 or self.dense_output == "concat"):
                features.append(x)
                x = torch.cat(features, dim=-1)
        if valid is not None and self.dense and self.dense_output == "concat":
            x = x * valid[..., None].to(x.dtype)  # the input part of the concatenation too
        c = finals[0][None] if len(finals) == 1 else torch.stack(finals)  # one layer: a view of its own c_T
        h_n = torch.cat(lasts)  # its own tensor (as nn.LSTM's), not a view of the output
        inputs = tuple(histories)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        if not batched:
            x, h_n, c = x.squeeze(1), h_n.squeeze(1), c.squeeze(1)
            inputs = tuple(h.squeeze(1) for h in inputs)
        return x, RecurrentState._of(h_n, c, inputs)


def _no_script(name: str) -> None:
    """Raises the one error ``torch.jit.script`` of a QRNN/SRU module gives (TorchScript is unsupported)."""
    raise RuntimeError(
        f"torch.jit.script does not support quasirnn.{name} (its state, PackedSequence handling and custom "
        "kernels are beyond TorchScript); export it with torch.export.export(...) or to ONNX with "
        "quasirnn.onnx.export(...) instead (see the README section 'Inference and deployment')"
    )


def _last(h: Tensor, last_step) -> Tensor:
    """h (T, B, H) at each sequence's last real step ``last_step`` (1, B, 1), or at T − 1 if None,
    as (1, B, H)."""
    if last_step is None:
        return h[-1:]
    return h.gather(0, last_step.expand(1, h.shape[1], h.shape[2]))


def _take(x: Tensor, index: Tensor) -> Tensor:
    """``x[index[t, b], b]`` for x (T, B, F) and index (T, B)."""
    return x.gather(0, index[..., None].expand_as(x))
