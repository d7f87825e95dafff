"""Length-bucketed, right-padded batches of id sequences (classification and translation).

:func:`length_batches` groups the indices of N sequences into batches of similar length (less
padding, faster steps); :func:`pad_batch` right-pads the sequences of one batch into a
time-major (T, B) LongTensor with their lengths, the layout of ``quasirnn.nn.QRNN(...,
lengths=...)``. The only source of randomness is a ``torch.Generator``, so an epoch's order
depends only on the generator's state (a resumed run can skip ahead).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

__all__ = ["POOL_BATCHES", "length_batches", "pad_batch"]

#: Batches per length-sorted pool in :func:`length_batches` with ``shuffle=True``.
POOL_BATCHES = 50


def length_batches(lengths: Union[Tensor, Sequence[int]], batch_size: int, shuffle: bool = False,
                   generator: Optional[torch.Generator] = None, pool: int = POOL_BATCHES) -> list[Tensor]:
    """Groups example indices into batches of similar length ("bucketing").

    Without ``shuffle``: all examples sorted by decreasing length (ties in index order), cut
    into batches. With ``shuffle``: a random permutation is cut into pools of
    ``pool · batch_size`` examples, each pool is sorted by decreasing length and cut into
    batches, and the batches are shuffled — random batches whose members have similar lengths.

    Args:
        lengths: (N,) lengths of the examples (a LongTensor or a sequence of ints).
        batch_size: B ≥ 1; the last batch of a pool may be smaller.
        shuffle: draw a random order (with ``generator``; torch's global RNG when None).
        generator: a ``torch.Generator``, the only source of randomness.
        pool: P ≥ 1, batches per length-sorted pool when shuffling.

    Returns:
        A list of LongTensors of indices into the N examples; together a partition of range(N).

    Raises:
        ValueError: ``batch_size`` < 1 or ``pool`` < 1.

    Example::

        >>> import torch
        >>> lengths = torch.tensor([3, 9, 1, 7, 5])
        >>> [b.tolist() for b in length_batches(lengths, 2)]
        [[1, 3], [4, 0], [2]]
        >>> batches = length_batches(lengths, 2, shuffle=True, generator=torch.Generator().manual_seed(0))
        >>> sorted(i for b in batches for i in b.tolist())
        [0, 1, 2, 3, 4]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if pool < 1:
        raise ValueError(f"pool must be >= 1 batches, got {pool}")
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    if not shuffle:
        order = torch.argsort(lengths, descending=True, stable=True)
        return list(order.split(batch_size))
    perm = torch.randperm(len(lengths), generator=generator)
    batches = []
    for chunk in perm.split(pool * batch_size):
        chunk = chunk[torch.argsort(lengths[chunk], descending=True, stable=True)]
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def pad_batch(sequences: Sequence[Union[Tensor, Sequence[int]]], pad_id: int = 0, *,
              device: Union[str, torch.device, None] = None) -> tuple[Tensor, Tensor]:
    """Right-pads 1-D id sequences into a time-major batch.

    Args:
        sequences: B sequences of ids, each a 1-D LongTensor (n_b,) or a list of ints, n_b ≥ 1.
        pad_id: the id written after each sequence's end (``<pad>``, 0 in every vocabulary
            of :mod:`quasirnn.data`).
        device: where both results are put (None: where they are built, the CPU).

    Returns:
        (ids LongTensor (T, B) with T = max n_b, padded with ``pad_id``;
        lengths LongTensor (B,) of the n_b).

    Raises:
        ValueError: an empty list of sequences, or an empty sequence (a model needs ≥ 1 step).

    Example::

        >>> ids, lengths = pad_batch([[5, 6, 7], [8]])
        >>> ids.tolist(), lengths.tolist()
        ([[5, 8], [6, 0], [7, 0]], [3, 1])
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence, got an empty batch")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if (lengths == 0).any():
        raise ValueError(f"every sequence must hold at least one token; sequence {int((lengths == 0).nonzero()[0])} is empty")
    tensors = [s if isinstance(s, Tensor) else torch.tensor(s, dtype=torch.long) for s in sequences]
    ids = pad_sequence(tensors, padding_value=pad_id)
    if device is not None:
        ids, lengths = ids.to(device), lengths.to(device)
    return ids, lengths
