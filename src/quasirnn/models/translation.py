"""Character-level encoder–decoders with attention: the QRNN paper's §2.1/§3.3 model and an LSTM counterpart.

Both models share one interface, so training and decoding code (:mod:`quasirnn.models.decoding`)
never look at the cell:

- ``encode(src (S, B), src_lengths (B,)) -> state``: runs the encoder and returns the decoder's
  initial state (which also carries the encoder outputs, the source mask and whatever the
  decoder reads from the encoder's final states);
- ``decode(tgt_in (T, B), state) -> (logits (T, B, V), state)``: runs the decoder over T more
  target characters (teacher forcing for T > 1, one step of generation for T = 1) and returns
  the state after them, so that generating one character costs one step;
- ``reorder_state(state, index (B',), memory=True) -> state``: selects / repeats batch rows
  (beam search; ``memory=False`` leaves the encoder side alone when rows only move among the
  hypotheses of one sentence);
- ``forward(src, src_lengths, tgt_in) -> logits``: ``decode(tgt_in, encode(src, src_lengths))``.

The source is read **reversed** (each sentence within its own length), as in the paper's
§3.3 ("inputs are supplied to the encoder reversed"): the encoder's final state then sits next
to the beginning of the sentence, where the decoder starts. The encoders are unidirectional
and their convolutions causal (the paper leaves the encoder convolutions unmasked; a causal
window over the reversed sentence reads the characters that follow in reading order).
Padding is on the right, so it never reaches a real step; the encoder's final states are taken
at each sentence's last real step and attention gives padding exactly zero weight.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from quasirnn._checks import check_int, check_probability
from quasirnn.models.paper_windows import TRANSLATOR_DECODER_WINDOWS, TRANSLATOR_ENCODER_WINDOWS, layer_windows
from quasirnn.nn.lengths import check_lengths, reverse_padded, valid_mask
from quasirnn.nn.windows import Windows

__all__ = [
    "TRANSLATION_CELLS",
    "EncoderMemory",
    "QRNNDecoderState",
    "LSTMDecoderState",
    "QRNNTranslator",
    "LSTMTranslator",
    "dot_attention",
    "reverse_padded",
]

#: Cells a translator can be built from (``--cell``).
TRANSLATION_CELLS = ("qrnn", "lstm")


def dot_attention(query: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Dot-product attention over the source (QRNN §2.1, eq. before (8); Luong et al. 2015 "dot").

    α_st = softmax_s(q_t · h̃_s) over the real source steps s, k_t = Σ_s α_st h̃_s.

    Args:
        query: (T, B, H) one query per target step.
        keys: (S, B, H) the encoder outputs h̃_s (also the values).
        mask: (S, B) bool, True on real source steps; every column needs at least one.

    Returns:
        ``(context, weights)``: k (T, B, H) and α (B, T, S); padded steps get weight exactly 0.

    Example::

        >>> mask = torch.tensor([[True, True], [True, False]])  # (S, B): the second source has 1 step
        >>> context, weights = dot_attention(torch.randn(3, 2, 4), torch.randn(2, 2, 4), mask)
        >>> context.shape, weights[1, :, 1].tolist()
        (torch.Size([3, 2, 4]), [0.0, 0.0, 0.0])
    """
    scores = torch.einsum("tbh,sbh->bts", query, keys)
    scores = scores.masked_fill(~mask.t()[:, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    context = torch.einsum("bts,sbh->tbh", weights, keys)
    return context, weights


class EncoderMemory(NamedTuple):
    """What attention reads: encoder outputs (S, B, H) of the last layer and the source mask (S, B) bool."""

    outputs: Tensor
    mask: Tensor

    def index_select(self, index: Tensor) -> "EncoderMemory":
        """The memory of batch rows ``index`` (B',)."""
        return EncoderMemory(self.outputs.index_select(1, index), self.mask.index_select(1, index))


class QRNNDecoderState(NamedTuple):
    """The QRNN decoder's state between calls of :meth:`QRNNTranslator.decode`.

    Attributes:
        memory: the encoder outputs and mask for attention.
        gate_bias: per decoder layer l, V^l h̃_T^l (B, 3H): the encoder's final state of layer l
            projected onto the Z, F, O pre-activations (paper §2.1).
        c: per decoder layer, the memory c (B, H) after the last step read.
        inputs: per decoder layer, its last window−1 inputs (k−1, B, N_l), oldest first.
    """

    memory: EncoderMemory
    gate_bias: tuple[Tensor, ...]
    c: tuple[Optional[Tensor], ...]
    inputs: tuple[Optional[Tensor], ...]


class LSTMDecoderState(NamedTuple):
    """The LSTM decoder's state: encoder memory and the (h, c) of every layer, each (L, B, H)."""

    memory: EncoderMemory
    h: Tensor
    c: Tensor


def _check_batch(src: Tensor, src_lengths: Tensor) -> Tensor:
    """``src_lengths`` checked against ``src`` (S, B) (:func:`~quasirnn.nn.lengths.check_lengths`), on its device."""
    if src.dim() != 2 or src.dtype != torch.long:
        raise ValueError(f"src must be a LongTensor (S, B), got {src.dtype} of shape {tuple(src.shape)}")
    return check_lengths(src_lengths, src.shape[0], src.shape[1], src.device, "src_lengths")


def _check_tgt(tgt_in: Tensor, batch: int) -> None:
    if tgt_in.dim() != 2 or tgt_in.dtype != torch.long or tgt_in.shape[1] != batch or tgt_in.shape[0] < 1:
        raise ValueError(f"tgt_in must be a LongTensor (T, B) with T >= 1 and B = {batch}, got {tgt_in.dtype} "
                         f"of shape {tuple(tgt_in.shape)}")


class _Translator(nn.Module):
    """Shared checks, embeddings and output layer of the two translators."""

    def _init_common(self, src_vocab: int, tgt_vocab: int, emb_size: int, hidden_size: int, num_layers: int,
                     dropout: float, pad_id: int) -> None:
        for name, value in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab), ("emb_size", emb_size),
                            ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_int(name, value)
        check_probability("dropout", dropout)
        if not (isinstance(pad_id, int) and 0 <= pad_id < min(src_vocab, tgt_vocab)):
            raise ValueError(f"pad_id must be an id of both vocabularies, in [0, {min(src_vocab, tgt_vocab)}), "
                             f"got {pad_id!r}")
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, float(dropout)
        self.src_embedding = nn.Embedding(src_vocab, emb_size, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab, emb_size, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.attn_context = nn.Linear(hidden_size, hidden_size, bias=False)  # W_k
        self.attn_query = nn.Linear(hidden_size, hidden_size)  # W_c
        self.output = nn.Linear(hidden_size, tgt_vocab)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (T, B, V) of ``tgt_in`` (T, B) given ``src`` (S, B) with ``src_lengths`` (B,)."""
        return self.decode(tgt_in, self.encode(src, src_lengths))[0]

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class QRNNTranslator(_Translator):
    """The QRNN encoder–decoder with attention of the QRNN paper (Bradbury et al. 2016, §2.1, §3.3).

    Encoder: L unidirectional fo-pooling QRNN layers over the reversed source characters
    (see the module docstring). Decoder: L fo-pooling QRNN layers over the target characters
    (causal convolutions), layer l conditioned on encoder layer l's last hidden state h̃_T^l:

    .. math::
        Z^l = \\tanh(W_z^l * X^l + V_z^l \\tilde h_T^l),\\ F^l = \\sigma(W_f^l * X^l + V_f^l \\tilde h_T^l),
        \\ O^l = \\sigma(W_o^l * X^l + V_o^l \\tilde h_T^l)

    The last decoder layer attends with its un-gated memory c_t^L:
    α_st = softmax_s(c_t^L · h̃_s^L), k_t = Σ_s α_st h̃_s^L, h_t^L = o_t ⊙ (W_k k_t + W_c c_t^L),
    then a linear layer gives the logits over the target characters.

    Args:
        src_vocab, tgt_vocab: V_src, V (id ``pad_id`` = padding in both).
        emb_size: E, character embedding size.
        hidden_size: H of every layer.
        num_layers: L, layers of the encoder and of the decoder.
        encoder_window: convolution widths of the encoder (:func:`~quasirnn.nn.resolve_windows`):
            an int for every layer, or L widths; None (default): the paper's
            :data:`~quasirnn.models.paper_windows.TRANSLATOR_ENCODER_WINDOWS` (6, 2, 2, 2 for L = 4;
            :func:`~quasirnn.models.paper_windows.layer_windows`).
        decoder_window: the same for the decoder; None: the paper's
            :data:`~quasirnn.models.paper_windows.TRANSLATOR_DECODER_WINDOWS` (2, 1, 1, 1 for L = 4).
        dropout: on the embeddings, between layers and before the output layer (training only).
        zoneout: QRNN zoneout (§2.1) in every layer (training only).
        pad_id: the padding id of both vocabularies (its embedding stays zero and gets no gradient;
            0 in :class:`quasirnn.data.vocabulary.CharVocab`).
        backend: the pooling kernel of every :class:`~quasirnn.QRNNLayer`, which checks it.

    Shape:
        - src LongTensor (S, B), right-padded; src_lengths LongTensor (B,) in [1, S].
        - tgt_in LongTensor (T, B): ``<bos>`` then the target characters.
        - logits (T, B, V), float.

    Raises:
        ValueError: invalid sizes, windows, probabilities, ``pad_id`` or backend; inputs of the wrong shape or dtype.

    Example::

        >>> model = QRNNTranslator(30, 20, emb_size=8, hidden_size=16, num_layers=2)
        >>> model.encoder_windows, model.decoder_windows
        ((6, 2), (2, 1))
        >>> src, lengths, tgt_in = torch.randint(1, 30, (7, 3)), torch.tensor([7, 4, 2]), torch.randint(1, 20, (5, 3))
        >>> model(src, lengths, tgt_in).shape
        torch.Size([5, 3, 20])
    """

    cell = "qrnn"

    def __init__(self, src_vocab: int, tgt_vocab: int, emb_size: int = 128, hidden_size: int = 256,
                 num_layers: int = 2, encoder_window: Optional[Windows] = None,
                 decoder_window: Optional[Windows] = None, dropout: float = 0.2,
                 zoneout: float = 0.0, pad_id: int = 0, backend: str = "auto") -> None:
        super().__init__()
        self._init_common(src_vocab, tgt_vocab, emb_size, hidden_size, num_layers, dropout, pad_id)
        from quasirnn import QRNNLayer  # imported late: the LSTM model does not need the ops

        self.encoder_windows = layer_windows(encoder_window, TRANSLATOR_ENCODER_WINDOWS, num_layers, "encoder_window")
        self.decoder_windows = layer_windows(decoder_window, TRANSLATOR_DECODER_WINDOWS, num_layers, "decoder_window")
        sizes = [emb_size] + [hidden_size] * (num_layers - 1)
        self.encoder = nn.ModuleList(QRNNLayer(n, hidden_size, k, "fo", zoneout, backend=backend)
                                     for n, k in zip(sizes, self.encoder_windows))
        self.decoder = nn.ModuleList(QRNNLayer(n, hidden_size, k, "fo", zoneout, backend=backend)
                                     for n, k in zip(sizes, self.decoder_windows))
        # V^l: encoder layer l's final state onto decoder layer l's Z, F, O pre-activations
        self.bridge = nn.ModuleList(nn.Linear(hidden_size, 3 * hidden_size, bias=False) for _ in range(num_layers))

    def encode(self, src: Tensor, src_lengths: Tensor) -> QRNNDecoderState:
        """Encodes ``src`` (S, B) with ``src_lengths`` (B,); returns the decoder's initial state."""
        lengths = _check_batch(src, src_lengths)
        S, B = src.shape
        valid = valid_mask(lengths, S)  # (S, B)
        x = self.drop(self.src_embedding(reverse_padded(src, lengths)))
        last = (lengths - 1)[None, :, None].expand(1, B, self.hidden_size)
        biases = []
        for l, layer in enumerate(self.encoder):
            h, _, _ = layer(x, None, None, valid)  # padded steps output zeros
            biases.append(self.bridge[l](h.gather(0, last)[0]))  # V^l h̃_T^l: (B, 3H)
            x = self.drop(h) if l < self.num_layers - 1 else h
        n = self.num_layers
        return QRNNDecoderState(EncoderMemory(x, valid), tuple(biases), (None,) * n, (None,) * n)

    def decode(self, tgt_in: Tensor, state: QRNNDecoderState) -> tuple[Tensor, QRNNDecoderState]:
        """Logits (T, B, V) of the next character after each of ``tgt_in`` (T, B), and the state after them."""
        _check_tgt(tgt_in, state.memory.mask.shape[1])
        x = self.drop(self.tgt_embedding(tgt_in))
        cs, inputs = [], []
        for l, layer in enumerate(self.decoder):
            if l < self.num_layers - 1:
                h, c_last, last_inputs = layer(x, state.c[l], state.inputs[l], None, state.gate_bias[l])
                x = self.drop(h)
            else:  # the attention layer needs the un-gated memory c and the output gate apart
                c, o, c_last, last_inputs = layer.memory_and_gate(x, state.c[l], state.inputs[l], None,
                                                                  state.gate_bias[l])
                context, _ = dot_attention(c, state.memory.outputs, state.memory.mask)
                x = self.drop(o * (self.attn_context(context) + self.attn_query(c)))
            cs.append(c_last)
            inputs.append(last_inputs)
        return self.output(x), state._replace(c=tuple(cs), inputs=tuple(inputs))

    def reorder_state(self, state: QRNNDecoderState, index: Tensor, memory: bool = True) -> QRNNDecoderState:
        """The state of batch rows ``index`` (B',) (beam search: repeat and reorder hypotheses).

        With ``memory=False`` the encoder memory and gate biases are kept as they are: right when
        ``index`` only permutes rows that share one source sentence (the hypotheses of a beam).
        """
        if not memory:
            return state._replace(
                c=tuple(None if c is None else c.index_select(0, index) for c in state.c),
                inputs=tuple(None if x is None else x.index_select(1, index) for x in state.inputs),
            )
        return QRNNDecoderState(
            state.memory.index_select(index),
            tuple(b.index_select(0, index) for b in state.gate_bias),
            tuple(None if c is None else c.index_select(0, index) for c in state.c),
            tuple(None if x is None else x.index_select(1, index) for x in state.inputs),
        )


class LSTMTranslator(_Translator):
    """The LSTM counterpart of :class:`QRNNTranslator`: an attentional LSTM encoder–decoder.

    Encoder: an L-layer ``nn.LSTM`` over the reversed source (packed, so each sentence runs
    exactly its length). Decoder: an L-layer ``nn.LSTM`` over the target characters whose
    layer l starts from encoder layer l's final (h, c) — the LSTM's way of conditioning every
    decoder layer on the encoder's last states. Attention (Luong et al. 2015, "dot", no input
    feeding): α_st = softmax_s(h_t^L · h̃_s^L), k_t = Σ_s α_st h̃_s^L,
    h̄_t = tanh(W_k k_t + W_c h_t^L), then the same output layer as the QRNN model.

    Args and shapes: as :class:`QRNNTranslator` (no windows, no zoneout).

    Raises:
        ValueError: invalid sizes, dropout or ``pad_id``; inputs of the wrong shape or dtype.

    Example::

        >>> model = LSTMTranslator(30, 20, emb_size=8, hidden_size=16, num_layers=2)
        >>> state = model.encode(torch.randint(1, 30, (7, 3)), torch.tensor([7, 4, 2]))
        >>> logits, state = model.decode(torch.randint(1, 20, (1, 3)), state)  # one step of generation
        >>> logits.shape
        torch.Size([1, 3, 20])
    """

    cell = "lstm"

    def __init__(self, src_vocab: int, tgt_vocab: int, emb_size: int = 128, hidden_size: int = 256,
                 num_layers: int = 2, dropout: float = 0.2, pad_id: int = 0) -> None:
        super().__init__()
        self._init_common(src_vocab, tgt_vocab, emb_size, hidden_size, num_layers, dropout, pad_id)
        self.encoder = nn.LSTM(emb_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0)
        self.decoder = nn.LSTM(emb_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0)

    def encode(self, src: Tensor, src_lengths: Tensor) -> LSTMDecoderState:
        """Encodes ``src`` (S, B) with ``src_lengths`` (B,); returns the decoder's initial state."""
        lengths = _check_batch(src, src_lengths)
        S = src.shape[0]
        x = self.drop(self.src_embedding(reverse_padded(src, lengths)))
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        out, (h, c) = self.encoder(packed)
        out, _ = pad_packed_sequence(out, total_length=S)  # zeros beyond each length
        return LSTMDecoderState(EncoderMemory(out, valid_mask(lengths, S)), h, c)

    def decode(self, tgt_in: Tensor, state: LSTMDecoderState) -> tuple[Tensor, LSTMDecoderState]:
        """Logits (T, B, V) of the next character after each of ``tgt_in`` (T, B), and the state after them."""
        _check_tgt(tgt_in, state.memory.mask.shape[1])
        x = self.drop(self.tgt_embedding(tgt_in))
        out, (h, c) = self.decoder(x, (state.h, state.c))
        context, _ = dot_attention(out, state.memory.outputs, state.memory.mask)
        x = self.drop(torch.tanh(self.attn_context(context) + self.attn_query(out)))
        return self.output(x), LSTMDecoderState(state.memory, h, c)

    def reorder_state(self, state: LSTMDecoderState, index: Tensor, memory: bool = True) -> LSTMDecoderState:
        """The state of batch rows ``index`` (B',); ``memory=False`` keeps the encoder memory as it is."""
        return LSTMDecoderState(state.memory.index_select(index) if memory else state.memory,
                                state.h.index_select(1, index),
                                state.c.index_select(1, index))
