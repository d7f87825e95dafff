"""TextClassifier and DenseLSTM: padding never changes a prediction (both cells, both poolings),
masked pooling by hand, dense sizes, the packed LSTM against per-sequence runs, and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quasirnn.data.batching import pad_batch
from quasirnn.models import DenseLSTM, TextClassifier, masked_pool
from quasirnn.models.paper_windows import IMDB_WINDOWS

CELLS = ["qrnn", "lstm", "sru"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _documents(n=5, vocab=50, low=1, high=12):
    lengths = torch.randint(low, high, (n,))
    lengths[0] = high  # the longest one sets T
    return [torch.randint(1, vocab, (int(k),)) for k in lengths]


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("cell", CELLS)
def test_padding_never_changes_a_prediction(cell, pooling):
    """The same review gives the same logits alone, in a padded batch, whatever the padding holds."""
    model = TextClassifier(50, emb_size=8, hidden_size=6, num_layers=3, cell=cell, window=2, pooling=pooling,
                           dropout=0.5, dropouth=0.5, dropouti=0.5, dropoute=0.5).double().eval()
    docs = _documents()
    ids, lengths = pad_batch(docs)
    batched = model(ids, lengths)
    garbage = ids.clone()
    for j, n in enumerate(lengths.tolist()):
        garbage[n:, j] = torch.randint(1, 50, (ids.size(0) - n,))  # real words where the padding was
    torch.testing.assert_close(model(garbage, lengths), batched, rtol=1e-12, atol=1e-12)
    for j, doc in enumerate(docs):
        alone = model(doc.unsqueeze(1), torch.tensor([len(doc)]))
        torch.testing.assert_close(alone[0], batched[j], rtol=1e-12, atol=1e-12)
        extra = torch.cat([doc, torch.zeros(7, dtype=torch.long)]).unsqueeze(1)  # padded far beyond the batch's T
        torch.testing.assert_close(model(extra, torch.tensor([len(doc)]))[0], batched[j], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_padding_invariance_in_float32(cell):
    model = TextClassifier(50, emb_size=16, hidden_size=16, num_layers=4, cell=cell).eval()
    docs = _documents(n=8, high=40)
    ids, lengths = pad_batch(docs)
    batched = model(ids, lengths)
    for j, doc in enumerate(docs):
        torch.testing.assert_close(model(doc.unsqueeze(1), torch.tensor([len(doc)]))[0], batched[j],
                                   rtol=1e-5, atol=1e-6)


def test_the_words_of_a_review_do_change_its_prediction():
    """Contrast for the invariance tests: a change inside the real length moves the logits."""
    model = TextClassifier(50, emb_size=8, hidden_size=6, num_layers=2).double().eval()
    ids, lengths = pad_batch(_documents())
    changed = ids.clone()
    changed[0, :] = (changed[0, :] % 49) + 1  # first word of every review
    assert not torch.allclose(model(changed, lengths), model(ids, lengths))


def test_masked_pool_by_hand():
    out = torch.arange(4 * 2 * 3, dtype=torch.float64).reshape(4, 2, 3)
    lengths = torch.tensor([2, 4])
    mean = masked_pool(out, lengths, "mean")
    torch.testing.assert_close(mean[0], out[:2, 0].mean(0))
    torch.testing.assert_close(mean[1], out[:, 1].mean(0))
    last = masked_pool(out, lengths, "last")
    torch.testing.assert_close(last, torch.stack([out[1, 0], out[3, 1]]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T\] = \[1, 4\], got values from 0 to 4"):
        masked_pool(out, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\), got \(3,\)"):
        masked_pool(out, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"pooling must be one of \('mean', 'last'\), got 'max'"):
        masked_pool(out, lengths, "max")


def test_dense_qrnn_classifier_sizes():
    model = TextClassifier(100, emb_size=8, hidden_size=6, num_layers=4)
    layers = model.rnn.layers
    assert [l.input_size for l in layers] == [8, 14, 20, 26]
    assert [l.window for l in layers] == [2, 1, 1, 1] == list(IMDB_WINDOWS.widths(4))  # the default preset
    assert [l.window for l in TextClassifier(100, 8, 6, num_layers=4, window=2).rnn.layers] == [2, 2, 2, 2]
    assert model.decoder.in_features == 8 + 4 * 6
    assert model(torch.randint(1, 100, (7, 3)), torch.tensor([7, 5, 1])).shape == (3, 2)
    plain = TextClassifier(100, emb_size=8, hidden_size=6, num_layers=4, window=[2, 2, 1, 1], dense=False)
    assert [l.input_size for l in plain.rnn.layers] == [8, 6, 6, 6] and plain.decoder.in_features == 6
    assert [l.window for l in plain.rnn.layers] == [2, 2, 1, 1]


@pytest.mark.parametrize("dense", [True, False])
def test_dense_lstm_matches_per_sequence_lstms(dense):
    stack = DenseLSTM(4, 3, num_layers=3, dense=dense).double().eval()
    sizes, width = ([4, 7, 10], 13) if dense else ([4, 3, 3], 3)
    assert [l.input_size for l in stack.layers] == sizes and stack.output_size == width
    docs = [torch.randn(n, 4, dtype=torch.float64) for n in (5, 2, 4)]
    x = nn.utils.rnn.pad_sequence(docs)
    lengths = torch.tensor([5, 2, 4])
    out = stack(x, lengths)
    assert out.shape == (5, 3, width)
    for j, doc in enumerate(docs):
        features = doc.unsqueeze(1)
        for lstm in stack.layers:
            h, _ = lstm(features)
            features = torch.cat([features, h], dim=-1) if dense else h
        n = len(doc)
        torch.testing.assert_close(out[:n, j], features[:, 0], rtol=1e-12, atol=1e-12)
        assert (out[n:, j] == 0).all()


def test_dense_lstm_dropout_only_between_layers_in_training():
    stack = DenseLSTM(4, 40, num_layers=2, dropout=0.5).train()
    out = stack(torch.randn(6, 3, 4), torch.tensor([6, 6, 6]))
    assert 0.3 < (out[..., 4:44] == 0).float().mean() < 0.7  # layer 1, dropped
    assert (out[..., 44:] != 0).all()  # last layer, not dropped
    stack.eval()
    assert (stack(torch.randn(6, 3, 4), torch.tensor([6, 6, 6]))[..., 4:] != 0).all()


@pytest.mark.parametrize("cell", CELLS)
def test_training_mode_dropouts_act_and_gradients_reach_every_parameter(cell):
    model = TextClassifier(30, emb_size=8, hidden_size=6, num_layers=3, cell=cell)
    ids, lengths = pad_batch(_documents(vocab=30))
    model.train()
    assert not torch.equal(model(ids, lengths), model(ids, lengths))  # dropout is on
    model(ids, lengths).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    torch.testing.assert_close(model(ids, lengths), model(ids, lengths), rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(cell="gru"), r"cell must be one of qrnn, lstm, sru, got 'gru'"),
        (dict(pooling="max"), r"pooling must be one of mean, last, got 'max'"),
        (dict(emb_size=0), r"emb_size must be >= 1, got 0"),
        (dict(dropouth=1.0), r"dropouth must be in \[0, 1\), got 1.0"),
        (dict(cell="lstm", zoneout=0.1), r"zoneout is implemented for the qrnn cell only"),
        (dict(window=[2, 1]), r"window must be an integer >= 1 \(every layer\) or a sequence of 4 integers"),
        (dict(window=[2, 0, 1, 1]), r"window\[1\] must be an integer >= 1, got 0"),
    ],
)
def test_rejects_invalid_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        TextClassifier(10, **kwargs)


def test_rejects_bad_input_shapes():
    model = TextClassifier(10, emb_size=4, hidden_size=4, num_layers=1)
    with pytest.raises(ValueError, match=r"ids must be a LongTensor \(T, B\), got torch.int64 of shape \(5,\)"):
        model(torch.ones(5, dtype=torch.long), torch.tensor([5]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\), got \(3,\)"):
        model(torch.ones(5, 2, dtype=torch.long), torch.tensor([5, 5, 5]))
