"""The QRNN encoder–decoder of the paper's §2.1 and its LSTM counterpart: incremental decoding,
attention masking, padding invariance, conditioning on the encoder, errors, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from quasirnn import QRNNLayer
from quasirnn.data.batching import length_batches, pad_batch
from quasirnn.data.bitext import ParallelSplit, read_parallel
from quasirnn.data.vocabulary import BOS_ID, PAD_ID, CharVocab
from quasirnn.errors import ConfigError
from quasirnn.experiments.translation import TranslatorOptions, build_translator
from quasirnn.models.translation import (
    LSTMTranslator,
    QRNNTranslator,
    dot_attention,
    reverse_padded,
)

SV, TV = 31, 27


def make(cell: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    if cell == "qrnn":
        kwargs.setdefault("encoder_window", [4, 2, 2])
        kwargs.setdefault("decoder_window", [2, 2, 3])
        model = QRNNTranslator(SV, TV, emb_size=12, hidden_size=16, num_layers=3, **kwargs)
    else:
        model = LSTMTranslator(SV, TV, emb_size=12, hidden_size=16, num_layers=3, **kwargs)
    return model.double().eval()


def random_batch(seed: int, S: int = 11, B: int = 5, T: int = 9):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S
    src = torch.randint(4, SV, (S, B), generator=g)
    src = src.masked_fill(torch.arange(S)[:, None] >= lengths[None, :], PAD_ID)
    tgt_in = torch.randint(4, TV, (T, B), generator=g)
    tgt_in[0] = BOS_ID
    return src, lengths, tgt_in


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_incremental_decoding_equals_teacher_forcing(cell):
    model = make(cell)
    src, lengths, tgt_in = random_batch(1)
    full = model(src, lengths, tgt_in)  # (T, B, V)
    state = model.encode(src, lengths)
    steps = []
    for t in range(tgt_in.shape[0]):
        logits, state = model.decode(tgt_in[t : t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps), full, rtol=1e-10, atol=1e-10)
    # and in uneven chunks (3 + 1 + 5 steps): the state carries memories and convolution history
    state = model.encode(src, lengths)
    chunks = []
    for a, b in ((0, 3), (3, 4), (4, 9)):
        logits, state = model.decode(tgt_in[a:b], state)
        chunks.append(logits)
    torch.testing.assert_close(torch.cat(chunks), full, rtol=1e-10, atol=1e-10)


def test_dot_attention_gives_padding_zero_weight():
    g = torch.Generator().manual_seed(3)
    query, keys = torch.randn(4, 3, 8, generator=g), torch.randn(6, 3, 8, generator=g)
    mask = torch.arange(6)[:, None] < torch.tensor([6, 2, 4])[None, :]
    context, weights = dot_attention(query, keys, mask)
    assert weights.shape == (3, 4, 6)
    assert torch.all(weights[1, :, 2:] == 0) and torch.all(weights[2, :, 4:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    # the same as attending over the real steps only
    c1, _ = dot_attention(query[:, 1:2], keys[:2, 1:2], mask[:2, 1:2])
    torch.testing.assert_close(context[:, 1:2], c1)


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_padded_source_content_never_changes_the_output(cell):
    model = make(cell)
    src, lengths, tgt_in = random_batch(2)
    base = model(src, lengths, tgt_in)
    padding = torch.arange(src.shape[0])[:, None] >= lengths[None, :]
    assert padding.any()
    noisy = torch.where(padding, torch.randint(4, SV, src.shape), src)
    torch.testing.assert_close(model(noisy, lengths, tgt_in), base, rtol=1e-12, atol=1e-12)
    # and each sentence alone gives what it gets in the padded batch
    for b in range(src.shape[1]):
        n = int(lengths[b])
        alone = model(src[:n, b : b + 1], lengths[b : b + 1], tgt_in[:, b : b + 1])
        torch.testing.assert_close(alone, base[:, b : b + 1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_the_output_depends_on_the_source(cell):
    model = make(cell)
    src, lengths, tgt_in = random_batch(4)
    other = torch.where(src == PAD_ID, src, torch.randint(4, SV, src.shape))
    diff = (model(src, lengths, tgt_in) - model(other, lengths, tgt_in)).abs()
    assert diff[0].max() > 1e-3  # already at the first target step (encoder final states + attention)


def test_every_qrnn_decoder_layer_is_conditioned_on_its_encoder_layer():
    model = make("qrnn")
    src, lengths, tgt_in = random_batch(5)
    state = model.encode(src, lengths)
    assert len(state.gate_bias) == 3 and all(b.shape == (5, 3 * 16) for b in state.gate_bias)
    base = model.decode(tgt_in, state)[0]
    for l in range(3):
        biases = list(state.gate_bias)
        biases[l] = biases[l] + torch.randn_like(biases[l])
        changed = model.decode(tgt_in, state._replace(gate_bias=tuple(biases)))[0]
        assert (changed - base).abs().max() > 1e-4, l


def test_reverse_padded_reverses_within_each_length():
    x = torch.tensor([[1, 4], [2, 5], [3, 0]])
    assert reverse_padded(x, torch.tensor([3, 2])).tolist() == [[3, 5], [2, 4], [1, 0]]


def test_qrnn_layer_gate_bias_is_added_before_the_activations():
    torch.manual_seed(0)
    layer = QRNNLayer(5, 7, window=2).double()
    x = torch.randn(6, 3, 5, dtype=torch.double)
    bias = torch.randn(3, 21, dtype=torch.double)
    h, c, last = layer(x, gate_bias=bias)
    # the same as a layer whose linear bias includes it, one batch row at a time
    for b in range(3):
        other = QRNNLayer(5, 7, window=2).double()
        other.load_state_dict(layer.state_dict())
        with torch.no_grad():
            other.linear.bias += bias[b]
        hb, cb, _ = other(x[:, b : b + 1])
        torch.testing.assert_close(hb[:, 0], h[:, b])
        torch.testing.assert_close(cb[0], c[b])
    h0, _, _ = layer(x)
    assert (h0 - h).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"gate_bias must have shape \(B, G\*H\) = \(3, 21\)"):
        layer(x, gate_bias=bias[:, :14])


def test_invalid_inputs_and_options_raise_clear_errors():
    model = make("qrnn")
    src, lengths, tgt_in = random_batch(6)
    with pytest.raises(ValueError, match="src must be a LongTensor"):
        model(src.double(), lengths, tgt_in)
    with pytest.raises(ValueError, match="src_lengths must lie in"):
        model(src, lengths * 0, tgt_in)
    with pytest.raises(ValueError, match="tgt_in must be a LongTensor"):
        model(src, lengths, tgt_in[:, :2])
    with pytest.raises(ValueError, match="encoder_window"):
        QRNNTranslator(SV, TV, num_layers=2, encoder_window=[6, 2, 2])
    with pytest.raises(ValueError, match="dropout"):
        LSTMTranslator(SV, TV, dropout=1.5)
    with pytest.raises(ValueError, match=rf"pad_id must be an id of both vocabularies, in \[0, {TV}\), got {TV}"):
        QRNNTranslator(SV, TV, pad_id=TV)
    with pytest.raises(ConfigError, match="cell must be one of"):
        build_translator(TranslatorOptions(cell="gru", emb_size=8, hidden_size=8, num_layers=1, dropout=0.0), SV, TV)


@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_the_padding_id_is_the_callers(cell):
    cls = QRNNTranslator if cell == "qrnn" else LSTMTranslator
    for pad_id in (PAD_ID, 5):
        model = cls(SV, TV, emb_size=8, hidden_size=8, num_layers=1, pad_id=pad_id)
        for embedding in (model.src_embedding, model.tgt_embedding):
            assert embedding.padding_idx == pad_id and not embedding.weight[pad_id].any()


def test_qrnn_and_lstm_of_equal_size_have_comparable_parameter_counts():
    q = QRNNTranslator(100, 80, emb_size=64, hidden_size=256, num_layers=2)
    l = LSTMTranslator(100, 80, emb_size=64, hidden_size=256, num_layers=2)
    assert 0.5 < q.num_parameters() / l.num_parameters() < 1.5


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["qrnn", "lstm"])
def test_training_on_a_real_slice_drives_the_loss_far_down(multi30k_slice, cell):
    src_text, tgt_text = read_parallel(multi30k_slice / "train.de.gz", multi30k_slice / "train.en.gz", limit=64)
    sv, tv = CharVocab.build(src_text), CharVocab.build(tgt_text)
    data = ParallelSplit.encode(src_text, tgt_text, sv, tv)
    torch.manual_seed(0)
    config = TranslatorOptions(cell=cell, emb_size=32, hidden_size=64, num_layers=2, dropout=0.0,
                               encoder_window=[6, 2], decoder_window=[2, 1], zoneout=0.0)
    model = build_translator(config, len(sv), len(tv))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = [b.tolist() for b in length_batches([len(s) for s in data.src], 16)]

    def loss_of(idx):
        src, src_len = pad_batch([data.src[i] for i in idx])
        tgt, _ = pad_batch([data.tgt[i] for i in idx])
        tgt_in = torch.cat([torch.full_like(tgt[:1], BOS_ID), tgt[:-1]])
        return F.cross_entropy(model(src, src_len, tgt_in).flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)

    with torch.no_grad():
        start = sum(loss_of(b).item() for b in batches) / len(batches)
    for _ in range(25):
        for b in batches:
            loss = loss_of(b)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    with torch.no_grad():
        end = sum(loss_of(b).item() for b in batches) / len(batches)
    assert start > 0.8 * math.log(len(tv))  # near ln(vocabulary size) at the start
    assert end < 0.5 * start, (start, end)
