"""Variable-length batches: a padded batch with ``lengths``, or a PackedSequence, gives every
sequence exactly what it gives alone — outputs, final memories and input history — in both
directions, for QRNN (all pooling forms, windows, dense) and SRU (both gate forms)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from quasirnn import QRNN, SRU

N, H = 3, 4


def _model(cell, window, pooling, bidirectional, dense):
    torch.manual_seed(0)
    if cell == "qrnn":
        model = QRNN(N, H, num_layers=2, window=window, pooling=pooling, bidirectional=bidirectional, dense=dense)
    else:
        model = SRU(N, H, num_layers=2, bidirectional=bidirectional, recurrent_gate=pooling != "f", dense=dense)
    return model.double().eval()


def _assert_each_sequence_alone(model, x, lengths, out, state):
    D = 2 if model.bidirectional else 1
    for b, L in enumerate(lengths):
        alone, alone_state = model(x[:L, b : b + 1])
        torch.testing.assert_close(out[:L, b : b + 1], alone, rtol=1e-10, atol=1e-10)
        assert (out[L:, b] == 0).all()
        torch.testing.assert_close(state.c[:, b : b + 1], alone_state.c, rtol=1e-10, atol=1e-10)
        for i in range(0, len(state.inputs), D):  # forward directions carry input history
            torch.testing.assert_close(state.inputs[i][:, b : b + 1], alone_state.inputs[i], rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    cell=st.sampled_from(["qrnn", "sru"]),
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    extra=st.integers(0, 2),
    window=st.integers(1, 3),
    pooling=st.sampled_from(["f", "fo", "ifo"]),
    bidirectional=st.booleans(),
    dense=st.booleans(),
)
def test_padded_batch_equals_each_sequence_alone(cell, lengths, extra, window, pooling, bidirectional, dense):
    model = _model(cell, window, pooling, bidirectional, dense)
    T = max(lengths) + extra  # padding past the longest sequence too
    x = torch.randn(T, len(lengths), N, dtype=torch.float64)
    out, state = model(x, lengths=torch.tensor(lengths))
    _assert_each_sequence_alone(model, x, lengths, out, state)
    # what the padding holds never matters
    noisy = x.clone()
    for b, L in enumerate(lengths):
        noisy[L:, b] = 1e3 * torch.randn(T - L, N, dtype=torch.float64)
    out2, state2 = model(noisy, lengths=lengths)
    torch.testing.assert_close(out2, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state2.c, state.c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["qrnn", "sru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_packed_sequence_matches_lengths_and_returns_packed(cell, bidirectional):
    model = _model(cell, 2, "fo", bidirectional, dense=False)
    lengths = [5, 2, 7, 1]
    x = torch.randn(7, 4, N, dtype=torch.float64)
    out, state = model(x, lengths=torch.tensor(lengths))
    packed, packed_state = model(pack_sequence([x[:L, b] for b, L in enumerate(lengths)], enforce_sorted=False))
    unpacked, got_lengths = pad_packed_sequence(packed)
    assert got_lengths.tolist() == lengths
    torch.testing.assert_close(unpacked, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(packed_state.c, state.c, rtol=1e-12, atol=1e-12)


def test_padded_steps_get_no_gradient_and_batch_first_works():
    model = _model("qrnn", 2, "ifo", True, dense=False)
    model.batch_first = True
    x = torch.randn(3, 6, N, dtype=torch.float64, requires_grad=True)  # (B, T, N)
    lengths = torch.tensor([6, 2, 4])
    out, state = model(x, lengths=lengths)
    assert out.shape == (3, 6, 2 * H)
    (gx,) = torch.autograd.grad(out.square().sum() + state.c.sum(), x)
    for b, L in enumerate(lengths.tolist()):
        assert (gx[b, L:] == 0).all() and (gx[b, :L] != 0).any()


def test_zoneout_in_training_freezes_memory_after_the_end():
    """Training mode: the zoneout mask and the length mask combine. Past a sequence's end its
    memory no longer moves, so its final memory is the one at its last real step: with f-pooling
    (h = c) that is its output there."""
    torch.manual_seed(0)
    model = QRNN(N, H, num_layers=1, pooling="f", zoneout=0.3).double().train()
    x = torch.randn(6, 3, N, dtype=torch.float64)
    out, state = model(x, lengths=[3, 6, 1])
    for b, L in enumerate([3, 6, 1]):
        torch.testing.assert_close(state.c[0, b], out[L - 1, b], rtol=0, atol=0)
        assert (out[L:, b] == 0).all()


@pytest.mark.parametrize(
    "lengths,error,pattern",
    [
        (torch.tensor([3, 0]), ValueError, r"lengths must lie in \[1, T\] = \[1, 4\]"),
        (torch.tensor([5, 1]), ValueError, r"lengths must lie in \[1, T\] = \[1, 4\]"),
        (torch.tensor([3]), ValueError, r"lengths must have shape \(B,\) = \(2,\)"),
        (torch.tensor([3.0, 1.0]), TypeError, r"lengths must be an integer tensor"),
    ],
)
def test_bad_lengths_are_refused(lengths, error, pattern):
    with pytest.raises(error, match=pattern):
        QRNN(N, H)(torch.randn(4, 2, N), lengths=lengths)
