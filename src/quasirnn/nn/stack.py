"""What every multi-layer, optionally bidirectional stack of this package shares (QRNN, SRU):
the constructor's ``nn.LSTM``-style options, input and ``hx`` checking, the loop over layers and
directions, and the :class:`QRNNState` it returns."""

from __future__ import annotations

from typing import NamedTuple, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from quasirnn._checks import check_int, check_probability
from quasirnn.nn.packing import packed_layout, repack, unpack


class QRNNState(NamedTuple):
    """Everything a QRNN or an SRU needs to continue a sequence exactly where a previous call stopped.

    Attributes:
        c: (L·D, B, H) the final memory c_T of every layer and direction, ordered like
            ``nn.LSTM``'s ``h_n`` (layer 0 forward, layer 0 backward, layer 1 forward, …). For
            f-pooling this is also the last output h_T; for fo/ifo pooling h_T = o_T ⊙ c_T.
        inputs: tuple of L·D tensors (k−1, B, N_l): the last window−1 inputs each layer read
            (its convolution's history), oldest first; N_l is ``input_size`` for layer 0 and
            D·H above (``input_size + l·D·H`` for layer l ≥ 0 with ``dense=True``). Empty
            (0, B, N_l) when ``window == 1``, as always for an SRU. Backward
            directions always start a sequence from zero history, so their entries are ignored
            when passed back.

    Unbatched input gives c (L·D, H) and inputs (k−1, N_l).
    """

    c: Tensor
    inputs: tuple[Tensor, ...]

    def detach(self) -> "QRNNState":
        """The same state cut from the autograd graph (truncated backpropagation through time)."""
        return QRNNState(self.c.detach(), tuple(x.detach() for x in self.inputs))


StateLike = Union[None, Tensor, QRNNState, tuple]


class StackedRecurrent(nn.Module):
    """Base of :class:`~quasirnn.QRNN` and :class:`~quasirnn.SRU`: L layers × D directions.

    A subclass calls :meth:`_init_stack` and fills ``self.layers`` (an ``nn.ModuleList`` of L·D
    layers, index ``l * D + d``). Each layer has ``input_size`` and ``window`` attributes and is
    called as ``layer(x (T, B, N_l), c0 (B, H) or None, prev_inputs (k−1, B, N_l) or None)``,
    returning ``(h (T, B, H), c_T (B, H), last_inputs (k−1, B, N_l))``.
    """

    def _init_stack(
        self, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool, batch_first: bool,
        *, dense: bool = False, dense_output: str = "concat",
    ) -> list[int]:
        """Checks and stores the stack options; returns the input size of each layer (N, D·H, …;
        N + l·D·H for layer l with ``dense``, paper §2.1) and sets ``output_size``.

        Raises:
            ValueError: ``num_layers`` < 1 or not an integer; ``dropout`` outside [0, 1);
                ``dense_output`` not "concat" or "last".
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
        DH = self.num_directions * hidden_size
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
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            layout = "(B, T, N)" if self.batch_first else "(T, B, N)"
            raise ValueError(
                f"{self._name} input must have shape {layout} or unbatched (T, N) with N = input_size = "
                f"{self.input_size}, got shape {tuple(input.shape)}"
            )
        time_dim = 1 if (self.batch_first and input.dim() == 3) else 0
        if input.shape[time_dim] == 0:
            raise ValueError(f"{self._name} input must have at least one time step (T >= 1)")
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

    def _check_lengths(self, lengths, T: int, B: int, device: torch.device) -> Tensor:
        """``lengths`` as a (B,) int64 tensor on ``device``; ValueError unless 1 ≤ length ≤ T."""
        if isinstance(lengths, (list, tuple)):
            lengths = torch.tensor(lengths)
        if not isinstance(lengths, Tensor) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must be an integer tensor (B,), got {getattr(lengths, 'dtype', type(lengths))}")
        if tuple(lengths.shape) != (B,):
            raise ValueError(f"lengths must have shape (B,) = ({B},), got {tuple(lengths.shape)}")
        if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"lengths must lie in [1, T] = [1, {T}], got values from {int(lengths.min())} "
                             f"to {int(lengths.max())}")
        return lengths.to(device=device, dtype=torch.long)

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
            lengths = self._check_lengths(lengths, T, B, x.device)
            steps = torch.arange(T, device=x.device)[:, None]
            valid = steps < lengths[None, :]  # (T, B)
            # reversal of each sequence within its own length (an involution; padding stays put)
            rev = torch.where(valid, lengths[None, :] - 1 - steps, steps)
        c0s, prevs = self._parse_hx(hx, x.shape[1], batched, x)
        D = self.num_directions
        x = self._between_layers(0, x, valid)
        finals, histories = [], []
        features = [x]  # dense: the input and every layer's output so far
        for layer_idx in range(self.num_layers):
            outputs = []
            for d in range(D):
                idx = layer_idx * D + d
                layer = self.layers[idx]
                if d == 0:
                    h, c_last, last_inputs = layer(x, c0s[idx], prevs[idx], valid)
                elif rev is None:
                    h, c_last, last_inputs = layer(x.flip(0), c0s[idx], None)
                    h = h.flip(0)
                else:
                    h, c_last, last_inputs = layer(_take(x, rev), c0s[idx], None, valid)
                    h = _take(h, rev)
                outputs.append(h)
                finals.append(c_last)
                histories.append(last_inputs)
            x = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)
            x = self._between_layers(layer_idx + 1, x, valid)
            if self.dropout > 0 and self.training and layer_idx < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
            if self.dense and (layer_idx < self.num_layers - 1 or self.dense_output == "concat"):
                features.append(x)
                x = torch.cat(features, dim=-1)
        if valid is not None and self.dense and self.dense_output == "concat":
            x = x * valid[..., None].to(x.dtype)  # the input part of the concatenation too
        c = torch.stack(finals)
        inputs = tuple(histories)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        if not batched:
            x, c, inputs = x.squeeze(1), c.squeeze(1), tuple(h.squeeze(1) for h in inputs)
        return x, QRNNState(c, inputs)


def _take(x: Tensor, index: Tensor) -> Tensor:
    """``x[index[t, b], b]`` for x (T, B, F) and index (T, B)."""
    return x.gather(0, index[..., None].expand_as(x))
