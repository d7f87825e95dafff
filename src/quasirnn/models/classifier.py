"""Document classifier of the QRNN paper's §3.1 (IMDb sentiment), and its LSTM counterpart.

embedding → densely connected recurrent stack (QRNN §2.1) → pooling over each document's real
time steps → dropout → linear over the classes.

Variable lengths: a batch is right-padded to its longest document. The recurrent stack is
**unidirectional**, so at every real step of a document its output depends only on that
document's own earlier tokens:

- QRNN: the convolutions are causal (a window looks back, never ahead) and the pooling walks
  forward, so the padding after a document never reaches its real steps; the pooling then reads
  only real steps (masked mean, or the step at ``length − 1``). Nothing needs packing.
- LSTM: ``pack_padded_sequence`` runs each document for exactly its length.

Either way a document gets the same logits alone or in any padded batch (up to float rounding
of differently-shaped matrix products). A backward direction would read the padding *first*;
that is why the classifier has no ``bidirectional`` option.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from quasirnn._checks import check_probability, check_qrnn_only
from quasirnn.models.dropout import embedded_dropout
from quasirnn.models.language_model import CELLS
from quasirnn.models.paper_windows import IMDB_WINDOWS, layer_windows
from quasirnn.nn.lengths import check_lengths, valid_mask
from quasirnn.nn.windows import Windows

__all__ = ["SEQUENCE_POOLINGS", "DenseLSTM", "TextClassifier", "masked_pool"]

#: How a classifier reads one vector out of a document's T outputs (its ``pooling``): their masked
#: mean, or the last real step's. (Not the QRNN's pooling of gates, ``quasirnn.ops``.)
SEQUENCE_POOLINGS = ("mean", "last")


def masked_pool(output: Tensor, lengths: Tensor, pooling: str = "mean") -> Tensor:
    """Pools recurrent outputs over each sequence's real steps only.

    Args:
        output: (T, B, F) outputs, right-padded; what stands beyond a length is ignored.
        lengths: LongTensor (B,), 1 ≤ lengths ≤ T, on any device.
        pooling: ``"mean"`` — average of steps 0 … length−1; ``"last"`` — the step
            ``length − 1`` (a forward RNN's summary of the whole sequence).

    Returns:
        (B, F), dtype of ``output``.

    Raises:
        ValueError: unknown pooling; lengths of the wrong shape or outside [1, T] (checked as
            :func:`~quasirnn.nn.lengths.check_lengths` does).
        TypeError: lengths not an integer tensor.

    Example::

        >>> out = torch.randn(4, 2, 3)
        >>> masked_pool(out, torch.tensor([2, 4])).shape, masked_pool(out, torch.tensor([2, 4]), "last").shape
        (torch.Size([2, 3]), torch.Size([2, 3]))
    """
    if pooling not in SEQUENCE_POOLINGS:
        raise ValueError(f"pooling must be one of {SEQUENCE_POOLINGS}, got {pooling!r}")
    T, B = output.shape[:2]
    lengths = check_lengths(lengths, T, B, output.device)
    if pooling == "last":
        return output[lengths - 1, torch.arange(B, device=output.device)]
    mask = valid_mask(lengths, T)  # (T, B)
    total = output.masked_fill(~mask.unsqueeze(-1), 0.0).sum(0)
    return total / lengths.unsqueeze(1).to(output.dtype)


class DenseLSTM(nn.Module):
    """A stack of ``nn.LSTM`` layers, optionally densely connected, over padded sequences.

    The LSTM counterpart of ``QRNN(dense=True)`` (QRNN §2.1, §3.1's "densely connected LSTM"):
    layer l reads ``[input, h^1, …, h^{l−1}]`` (with ``dense``) or ``h^{l−1}`` (without). The
    sequences are packed once (``pack_padded_sequence``) and stay packed through the stack — the
    packed rows of every layer line up, so the dense concatenation is a concatenation of
    ``PackedSequence.data`` — and each LSTM runs exactly each sequence's length.

    Args:
        input_size: N.
        hidden_size: H of every layer.
        num_layers: L.
        dropout: dropout on the outputs of every layer but the last (training only).
        dense: densely connected layers.

    Shape:
        - input (T, B, N) float, right-padded; lengths LongTensor (B,) in [1, T].
        - output (T, B, ``output_size``): N + L·H with ``dense``, else H; zero beyond each length.

    Raises:
        ValueError: invalid sizes or dropout.

    Example::

        >>> lstm = DenseLSTM(4, 6, num_layers=2)
        >>> lstm(torch.randn(5, 3, 4), torch.tensor([5, 2, 1])).shape
        torch.Size([5, 3, 16])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 dense: bool = True) -> None:
        super().__init__()
        if min(input_size, hidden_size, num_layers) < 1:
            raise ValueError(f"sizes must be >= 1, got input_size={input_size}, hidden_size={hidden_size}, "
                             f"num_layers={num_layers}")
        check_probability("dropout", dropout)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout, self.dense = float(dropout), bool(dense)
        sizes = [input_size + l * hidden_size if dense else (input_size if l == 0 else hidden_size)
                 for l in range(num_layers)]
        self.layers = nn.ModuleList(nn.LSTM(n, hidden_size) for n in sizes)
        self.output_size = input_size + num_layers * hidden_size if dense else hidden_size

    def forward(self, input: Tensor, lengths: Tensor) -> Tensor:
        """Runs the stack; see the class docstring for shapes."""
        packed = pack_padded_sequence(input, lengths.cpu(), enforce_sorted=False)
        features = [packed.data]  # (sum of lengths, ·) rows, the same order for every layer
        x = packed
        for l, lstm in enumerate(self.layers):
            h, _ = lstm(x)
            data = h.data
            if self.dropout > 0 and self.training and l < self.num_layers - 1:
                data = F.dropout(data, self.dropout, training=True)
            if self.dense:
                features.append(data)
                data = torch.cat(features, dim=-1)
            x = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        output, _ = pad_packed_sequence(x, total_length=input.size(0))
        return output


class TextClassifier(nn.Module):
    """Document classifier: embedding → dense QRNN (or LSTM) → masked pooling → linear (QRNN §3.1).

    The paper's IMDb model is a densely connected 4-layer QRNN (§2.1, §3.1). Here the QRNN is
    ``quasirnn.QRNN(dense=True)`` with fo-pooling, unidirectional (see the module docstring for
    why padding then never changes a prediction); the LSTM counterpart is :class:`DenseLSTM`
    with packed sequences.

    Args:
        vocab_size: V; id 0 is padding (its embedding stays zero).
        emb_size: E.
        hidden_size: H of every recurrent layer.
        num_layers: L.
        num_classes: C (2 for IMDb: negative, positive).
        cell: ``"qrnn"`` (dense QRNN), ``"sru"`` (dense SRU) or ``"lstm"`` (dense LSTM, packed).
        window: QRNN convolution widths (:func:`~quasirnn.nn.resolve_windows`): an int for
            every layer, or a sequence of L widths; None (default): the paper's
            :data:`~quasirnn.models.paper_windows.IMDB_WINDOWS` (2 in the first layer, 1 above:
            their inputs already carry the embeddings through the dense connections;
            :func:`~quasirnn.models.paper_windows.layer_windows`). Checked, then ignored by
            ``"lstm"`` and ``"sru"``.
        dense: densely connected layers (the recurrent output is then the concatenation
            ``[embeddings, h^1, …, h^L]``, E + L·H features); otherwise the last layer's h^L.
        pooling: ``"mean"`` (masked mean over real steps) or ``"last"`` (the output at each
            document's last real step).
        zoneout: QRNN zoneout (§2.1) in training; must be 0 for ``"lstm"``.
        dropout: dropout on the pooled features before the linear layer.
        dropouth: dropout between recurrent layers.
        dropouti: dropout on the embeddings.
        dropoute: embedding (word-type) dropout (AWD-LSTM §4.3).
        backend: the recurrence kernel of the ``"qrnn"`` and ``"sru"`` stacks, passed to
            :class:`~quasirnn.QRNN` / :class:`~quasirnn.SRU`, which check it; unused by ``"lstm"``.

    Shape:
        - ids: LongTensor (T, B), right-padded (any value beyond a length is ignored).
        - lengths: LongTensor (B,) in [1, T].
        - Output: logits (B, C) in the parameters' dtype (``softmax`` gives class probabilities).

    Raises:
        ValueError: unknown cell, pooling or backend, invalid sizes, windows or probabilities.

    Example::

        >>> model = TextClassifier(100, emb_size=8, hidden_size=6, num_layers=2)
        >>> model.windows, model(torch.randint(1, 100, (7, 3)), torch.tensor([7, 5, 1])).shape
        ((2, 1), torch.Size([3, 2]))
    """

    def __init__(
        self,
        vocab_size: int,
        emb_size: int = 128,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_classes: int = 2,
        cell: str = "qrnn",
        window: Optional[Windows] = None,
        dense: bool = True,
        pooling: str = "mean",
        zoneout: float = 0.0,
        dropout: float = 0.3,
        dropouth: float = 0.3,
        dropouti: float = 0.2,
        dropoute: float = 0.1,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if pooling not in SEQUENCE_POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(SEQUENCE_POOLINGS)}, got {pooling!r}")
        for name, value in (("vocab_size", vocab_size), ("emb_size", emb_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers), ("num_classes", num_classes)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("dropout", dropout), ("dropouth", dropouth), ("dropouti", dropouti), ("dropoute", dropoute)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        check_qrnn_only("zoneout", zoneout, cell)
        windows = layer_windows(window, IMDB_WINDOWS, num_layers)

        self.cell, self.pooling, self.dense = cell, pooling, bool(dense)
        self.windows = tuple(windows) if cell == "qrnn" else None
        self.dropoute = dropoute
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=0)
        if cell == "qrnn":
            from quasirnn import QRNN  # imported late: the "lstm" model does not need the ops

            self.rnn = QRNN(emb_size, hidden_size, num_layers, window=windows, pooling="fo", zoneout=zoneout,
                            dropout=dropouth, dense=dense, dense_output="concat", backend=backend)
        elif cell == "sru":
            from quasirnn import SRU

            self.rnn = SRU(emb_size, hidden_size, num_layers, dropout=dropouth, dense=dense, dense_output="concat",
                           backend=backend)
        else:
            self.rnn = DenseLSTM(emb_size, hidden_size, num_layers, dropout=dropouth, dense=dense)
        self.drop_in = nn.Dropout(dropouti)
        self.drop_out = nn.Dropout(dropout)
        self.decoder = nn.Linear(self.rnn.output_size, num_classes)

    def features(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """The pooled document features before the final dropout and linear layer: (B, F)."""
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids must be a LongTensor (T, B), got {ids.dtype} of shape {tuple(ids.shape)}")
        if lengths.shape != ids.shape[1:]:
            raise ValueError(f"lengths must have shape (B,) = ({ids.shape[1]},), got {tuple(lengths.shape)}")
        x = embedded_dropout(self.embedding, ids, self.dropoute, self.training)  # (T, B, E)
        x = self.drop_in(x)
        if self.cell in ("qrnn", "sru"):
            output, _ = self.rnn(x)  # (T, B, F); causal: steps past a length are computed but never read
        else:
            output = self.rnn(x, lengths)
        return masked_pool(output, lengths, self.pooling)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Class logits (B, C) of the padded documents ``ids`` (T, B) with ``lengths`` (B,)."""
        return self.decoder(self.drop_out(self.features(ids, lengths)))

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
