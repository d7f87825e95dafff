"""Length-bucketed batches and right padding (quasirnn.data.batching), shared by classification
and translation: one signature, one RNG type (torch.Generator)."""

from __future__ import annotations

import pytest
import torch

from quasirnn.data.batching import length_batches, pad_batch


def test_length_batches_partition_and_bucketing():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 500, (1000,), generator=g)
    sorted_batches = length_batches(lengths, 32)
    assert torch.equal(torch.sort(torch.cat(sorted_batches)).values, torch.arange(1000))
    flat = lengths[torch.cat(sorted_batches)]
    assert torch.equal(flat, torch.sort(lengths, descending=True).values)

    shuffled = length_batches(lengths, 32, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.sort(torch.cat(shuffled)).values, torch.arange(1000))
    assert all(len(b) <= 32 for b in shuffled)
    again = length_batches(lengths, 32, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(shuffled, again))
    other = length_batches(lengths, 32, shuffle=True, generator=torch.Generator().manual_seed(2))
    assert not all(torch.equal(a, b) for a, b in zip(shuffled, other))
    # bucketing: far less padding than random batches of the same size
    padded = sum(len(b) * int(lengths[b].max()) for b in shuffled)
    random_batches = torch.randperm(1000, generator=g).split(32)
    padded_random = sum(len(b) * int(lengths[b].max()) for b in random_batches)
    assert padded < 0.75 * padded_random
    assert padded < 1.1 * int(lengths.sum())


def test_length_batches_of_an_int_list_group_similar_lengths_per_pool():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 101, (1000,), generator=g).tolist()
    for shuffle in (False, True):
        batches = length_batches(lengths, 32, shuffle=shuffle, generator=torch.Generator().manual_seed(1), pool=10)
        flat = sorted(i for b in batches for i in b.tolist())
        assert flat == list(range(1000))
        assert all(len(b) <= 32 for b in batches)
        spread = sum(max(lengths[i] for i in b.tolist()) - min(lengths[i] for i in b.tolist()) for b in batches)
        assert spread / len(batches) < 20  # random batches of 32 would spread ~90
    first = length_batches(lengths, 32, shuffle=True, generator=torch.Generator().manual_seed(1))
    second = length_batches(lengths, 32, shuffle=True, generator=torch.Generator().manual_seed(2))
    assert [b.tolist() for b in first] != [b.tolist() for b in second]


@pytest.mark.parametrize("kwargs, match", [({"batch_size": 0}, "batch_size must be >= 1"),
                                           ({"batch_size": 4, "pool": 0}, "pool must be >= 1")])
def test_length_batches_refuses_counts_below_one(kwargs, match):
    with pytest.raises(ValueError, match=match):
        length_batches(torch.tensor([3, 1, 2]), **kwargs)


@pytest.mark.parametrize("as_tensor", [True, False])
def test_pad_batch_right_pads_time_major(as_tensor):
    seqs = [[5, 6, 7], [8], [9, 4]]
    ids, lengths = pad_batch([torch.tensor(s) for s in seqs] if as_tensor else seqs)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[5, 8, 9], [6, 0, 4], [7, 0, 0]] and lengths.tolist() == [3, 1, 2]
    ids, _ = pad_batch(seqs, pad_id=1)
    assert ids[:, 1].tolist() == [8, 1, 1]
    with pytest.raises(ValueError, match="at least one token; sequence 1 is empty"):
        pad_batch([torch.tensor([5]), torch.tensor([], dtype=torch.long)] if as_tensor else [[1], []])
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_batch([])


def test_pad_batch_puts_both_results_on_the_device():
    ids, lengths = pad_batch([[3, 2], [1]], device="meta")
    assert ids.device.type == lengths.device.type == "meta" and ids.shape == (2, 2)
