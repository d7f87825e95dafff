"""QRNN as a drop-in for nn.LSTM: code written for nn.LSTM (positional constructor arguments,
``output, (h_n, c_n)`` unpacking, ``h_n[-1]`` classifiers, truncated BPTT that repackages the
state, PackedSequence input, batch_first, proj_size) runs with ``RNN = QRNN`` and nothing else
changed, and the relations between output and state that hold for nn.LSTM hold for QRNN too."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import quasirnn
from quasirnn import QRNN, SRU, QRNNState

CLASSES = [nn.LSTM, QRNN]
IDS = ["lstm", "qrnn"]


@pytest.fixture(autouse=True)
def _quiet_h0():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ignores h_0")
        yield


# ------------------------------------------------------------------ code as written for nn.LSTM


class Classifier(nn.Module):
    """A bidirectional sequence classifier reading h_n, as commonly written for nn.LSTM."""

    def __init__(self, RNN, vocab, emb, hidden, classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = RNN(emb, hidden, 2, True, True, 0.0, True)  # bias, batch_first, dropout, bidirectional
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, ids):
        output, (h_n, c_n) = self.rnn(self.embedding(ids))
        return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=-1)), output, h_n, c_n


def repackage_hidden(h):
    """PyTorch's word_language_model example: detach the state for truncated BPTT."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def run_chunks(rnn, x, bptt):
    hidden, outs = None, []
    for i in range(0, x.size(0), bptt):
        out, hidden = rnn(x[i : i + bptt], hidden)
        hidden = repackage_hidden(hidden)
        outs.append(out)
    return torch.cat(outs), hidden


@pytest.mark.parametrize("RNN", CLASSES, ids=IDS)
def test_classifier_reads_the_last_outputs_from_h_n(RNN):
    torch.manual_seed(0)
    model = Classifier(RNN, 20, 6, 8, 3).double()
    ids = torch.randint(0, 20, (4, 9))  # (B, T): batch_first
    logits, output, h_n, c_n = model(ids)
    assert logits.shape == (4, 3) and output.shape == (4, 9, 16)
    assert h_n.shape == (4, 4, 8) and c_n.shape == (4, 4, 8)
    # the nn.LSTM relations: the last layer's forward h_n is the output at T-1, its backward at t=0
    torch.testing.assert_close(h_n[-2], output[:, -1, :8], rtol=0, atol=0)
    torch.testing.assert_close(h_n[-1], output[:, 0, 8:], rtol=0, atol=0)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.rnn.parameters())


@pytest.mark.parametrize("RNN", CLASSES + [quasirnn.SRU], ids=IDS + ["sru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_state_is_not_a_view_of_the_output(RNN, num_layers):
    """As with nn.LSTM, changing the output in place (a mask, an activation) leaves h_n and c_n as
    they were, with one layer too."""
    torch.manual_seed(0)
    rnn = RNN(3, 4, num_layers=num_layers)
    with torch.no_grad():
        output, (h_n, c_n) = rnn(torch.randn(5, 2, 3))
        h_before, c_before = h_n.clone(), c_n.clone()
        output.mul_(0.0)
    torch.testing.assert_close(h_n, h_before, rtol=0, atol=0)
    torch.testing.assert_close(c_n, c_before, rtol=0, atol=0)
    assert torch.count_nonzero(h_n) > 0


@pytest.mark.parametrize("RNN", CLASSES, ids=IDS)
def test_truncated_bptt_with_repackaged_state_continues_the_sequence(RNN):
    torch.manual_seed(0)
    rnn = RNN(5, 7, 2).double()
    x = torch.randn(12, 3, 5, dtype=torch.float64)
    whole, (h_n, c_n) = rnn(x)
    chunked, (h_c, c_c) = run_chunks(rnn, x, bptt=5)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_c, c_n, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_c, h_n, rtol=1e-12, atol=1e-12)
    # a training loop over chunks, as in word_language_model
    opt = torch.optim.SGD(rnn.parameters(), lr=0.1)
    hidden = None
    for i in range(0, 12, 4):
        out, hidden = rnn(x[i : i + 4], hidden)
        hidden = repackage_hidden(hidden)
        loss = out.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("RNN", CLASSES, ids=IDS)
def test_packed_sequence_gives_each_sequences_own_last_output(RNN):
    torch.manual_seed(0)
    rnn = RNN(4, 6, 1, batch_first=True, bidirectional=True).double()
    x = torch.randn(3, 7, 4, dtype=torch.float64)
    lengths = torch.tensor([4, 7, 2])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_packed, (h_n, c_n) = rnn(packed)
    out, out_lengths = pad_packed_sequence(out_packed, batch_first=True)
    assert out_lengths.tolist() == lengths.tolist()
    for b, n in enumerate(lengths.tolist()):
        alone, (h_b, c_b) = rnn(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h_n[:, b], h_b[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c_n[:, b], c_b[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h_n[0, b], out[b, n - 1, :6], rtol=0, atol=0)
        torch.testing.assert_close(h_n[1, b], out[b, 0, 6:], rtol=0, atol=0)


@pytest.mark.parametrize("RNN", CLASSES, ids=IDS)
def test_proj_size_shapes_and_factory_arguments(RNN):
    rnn = RNN(4, 8, 2, proj_size=3, bidirectional=True, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in rnn.parameters())
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    out, (h_n, c_n) = rnn(x)
    assert out.shape == (5, 2, 6) and h_n.shape == (4, 2, 3) and c_n.shape == (4, 2, 8)
    torch.testing.assert_close(h_n[-2], out[-1, :, :3], rtol=0, atol=0)
    out2, _ = rnn(x, (torch.zeros(4, 2, 3, dtype=torch.float64), torch.randn(4, 2, 8, dtype=torch.float64)))
    assert out2.shape == out.shape
    with pytest.raises(ValueError, match="proj_size (must|has to) be smaller than hidden_size"):
        RNN(4, 8, proj_size=8)


# ------------------------------------------------------------------ QRNN specifics of the state


def test_proj_size_is_a_linear_map_of_the_unprojected_output():
    torch.manual_seed(0)
    model = QRNN(4, 8, 1, proj_size=3, window=2).double()
    plain = QRNN(4, 8, 1, window=2).double()
    plain.layers[0].linear.load_state_dict(model.layers[0].linear.state_dict())
    x = torch.randn(6, 2, 4, dtype=torch.float64)
    out, (h_n, c_n) = model(x)
    ref, (_, c_ref) = plain(x)
    torch.testing.assert_close(out, ref @ model.layers[0].proj.weight.T, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_n, c_ref, rtol=0, atol=0)


def test_user_h0_c0_is_c0_with_zero_history_and_h0_warns_once():
    torch.manual_seed(0)
    model = QRNN(3, 5, 2, window=2).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    c0 = torch.randn(2, 2, 5, dtype=torch.float64)
    ref, ref_state = model(x, c0)
    got, state = model(x, (torch.zeros(2, 2, 5, dtype=torch.float64), c0))
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    torch.testing.assert_close(state.c, ref_state.c, rtol=0, atol=0)
    quasirnn.nn.stack._warned_h0 = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(x, (torch.ones(2, 2, 5, dtype=torch.float64), c0))
        model(x, (torch.ones(2, 2, 5, dtype=torch.float64), c0))
    assert sum("ignores h_0" in str(w.message) for w in caught) == 1
    with pytest.raises(ValueError, match=r"hx h_0 must have shape \(num_layers\*D, B, H_out\) = \(2, 2, 5\)"):
        model(x, (torch.zeros(1, 2, 5, dtype=torch.float64), c0))


def test_state_passed_back_and_legacy_states_continue_exactly():
    torch.manual_seed(0)
    model = QRNN(3, 5, 2, window=2, pooling="ifo").double()
    x = torch.randn(9, 2, 3, dtype=torch.float64)
    whole, whole_state = model(x)
    first, state = model(x[:4])
    assert isinstance(state, QRNNState) and len(state) == 2 and len(state.inputs) == 2
    h_n, c_n = state
    assert h_n is state.h and c_n is state.c
    for hx in (state, QRNNState(state.c, state.inputs), QRNNState(c=state.c, inputs=state.inputs),
               (state.c, state.inputs)):
        rest, end = model(x[4:], hx)
        torch.testing.assert_close(torch.cat([first, rest]), whole, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(end.c, whole_state.c, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(end.h, whole_state.h, rtol=1e-12, atol=1e-12)
    assert QRNNState(state.c, state.inputs).h is None  # the legacy form carries no h_n


def test_unbatched_state_shapes():
    model = QRNN(3, 5, 2, bidirectional=True, proj_size=2)
    out, (h_n, c_n) = model(torch.randn(4, 3))
    assert out.shape == (4, 4) and h_n.shape == (4, 2) and c_n.shape == (4, 5)


@pytest.mark.parametrize("make", [lambda: QRNN(4, 8), lambda: SRU(4, 8)], ids=["qrnn", "sru"])
def test_an_input_of_another_dtype_is_one_line_naming_both(make):
    """A float16 input into a float32 module is a TypeError naming both dtypes (not PyTorch's error
    from deep inside the projection); autocast, which casts the gates itself, is allowed."""
    module = make()
    with pytest.raises(TypeError, match=r"input has dtype torch.float16 but its weights have torch.float32"):
        module(torch.randn(3, 2, 4, dtype=torch.float16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = module(torch.randn(3, 2, 4, dtype=torch.bfloat16))
    assert output.shape == (3, 2, 8)
