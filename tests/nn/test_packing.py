"""The one-gather PackedSequence conversions against PyTorch's pad_packed_sequence / pack_padded_sequence,
values and gradients, sorted and unsorted batches, and the layers' packed path backward."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence

import quasirnn
from quasirnn.nn.packing import packed_layout, repack, unpack


def _packed(lengths: list[int], features: int, enforce_sorted: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randn(L, features, generator=g, dtype=torch.float64, requires_grad=True) for L in lengths]
    return seqs, pack_sequence(seqs, enforce_sorted=enforce_sorted)


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=6), seed=st.integers(0, 10_000),
       unsorted=st.booleans())
def test_unpack_and_repack_match_pytorch_values_and_gradients(lengths, seed, unsorted):
    if not unsorted:
        lengths = sorted(lengths, reverse=True)
    seqs, packed = _packed(lengths, 3, enforce_sorted=not unsorted, seed=seed)
    layout = packed_layout(packed)
    ours = unpack(packed, layout)
    theirs, their_lengths = pad_packed_sequence(packed)
    assert torch.equal(ours, theirs)
    assert layout.lengths.tolist() == their_lengths.tolist() == lengths
    assert layout.valid.sum(0).tolist() == lengths

    weight = torch.randn(ours.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    again = repack(ours * weight, packed, layout)
    reference = pack_padded_sequence(theirs * weight, their_lengths, enforce_sorted=False)
    assert torch.equal(again.data, reference.data)
    assert torch.equal(again.batch_sizes, packed.batch_sizes)
    for got, want in ((again.sorted_indices, packed.sorted_indices), (again.unsorted_indices, packed.unsorted_indices)):
        assert (got is None and want is None) or torch.equal(got, want)

    cot = torch.randn(again.data.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 2))
    ours_grad = torch.autograd.grad(again.data, seqs, cot, retain_graph=True)  # shares pack_sequence's graph
    theirs_grad = torch.autograd.grad(reference.data, seqs, cot)
    for a, b in zip(ours_grad, theirs_grad):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_layout_rejects_increasing_batch_sizes():
    _, packed = _packed([3, 2], 2, enforce_sorted=True, seed=0)
    broken = torch.nn.utils.rnn.PackedSequence(packed.data, torch.tensor([1, 2, 2]), None, None)
    with pytest.raises(ValueError, match="non-increasing batch_sizes"):
        packed_layout(broken)


@pytest.mark.parametrize("cell", ["qrnn", "sru"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_input_gradients_equal_lengths_path(cell, batch_first):
    torch.manual_seed(3)
    N, H = 4, 5
    model = (quasirnn.QRNN(N, H, num_layers=2, window=2, bidirectional=True, batch_first=batch_first) if cell == "qrnn"
             else quasirnn.SRU(N, H, num_layers=2, bidirectional=True, batch_first=batch_first)).double()
    lengths = [4, 7, 1, 5]
    seqs = [torch.randn(L, N, dtype=torch.float64, requires_grad=True) for L in lengths]
    packed_out, packed_state = model(pack_sequence(seqs, enforce_sorted=False))
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=batch_first)
    out, state = model(padded, lengths=torch.tensor(lengths))
    cot = torch.randn(out.shape, dtype=torch.float64)
    want = torch.autograd.grad((out * cot).sum() + state.c.sum(), seqs)
    unpacked, _ = pad_packed_sequence(packed_out, batch_first=batch_first)
    torch.testing.assert_close(unpacked, out, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad((unpacked * cot).sum() + packed_state.c.sum(), seqs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradcheck_and_gradgradcheck_of_the_round_trip():
    seqs, packed = _packed([3, 1, 4], 2, enforce_sorted=False, seed=5)
    layout = packed_layout(packed)
    data = packed.data.detach().requires_grad_()
    weight = torch.randn(4, 3, 2, dtype=torch.float64)

    def round_trip(d):
        p = torch.nn.utils.rnn.PackedSequence(d, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        return repack(unpack(p, layout) * weight, p, layout).data

    assert torch.autograd.gradcheck(round_trip, (data,))
    assert torch.autograd.gradgradcheck(round_trip, (data,))
