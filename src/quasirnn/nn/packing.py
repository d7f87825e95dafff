"""PackedSequence ↔ padded batch as one gather each way (for :class:`~quasirnn.nn.stack.StackedRecurrent`).

``torch.nn.utils.rnn.pad_packed_sequence`` and ``pack_padded_sequence`` copy one time step at a
time, forward and backward (about 4·T small copies per layer call); here each direction is a
single ``index_select`` whose backward is a single ``index_add``, with the (T, B) index built
once from the ``batch_sizes`` and the sort permutation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

__all__ = ["PackedLayout", "packed_layout", "unpack", "repack"]


class PackedLayout(NamedTuple):
    """Where each element of a padded (T, B) batch sits in a PackedSequence's ``data``.

    Attributes:
        rows: LongTensor (T·B,): for padded position t·B + b (b in the original batch order), its
            row in ``data``; padded positions (t ≥ length of b) point at row 0.
        valid: BoolTensor (T, B), True where t < length of sequence b.
        lengths: LongTensor (B,) on the CPU, in the original batch order (as ``pad_packed_sequence`` returns).
        positions: LongTensor (R,), R = number of rows of ``data``: the padded position t·B + b of each row.
    """

    rows: Tensor
    valid: Tensor
    lengths: Tensor
    positions: Tensor


def packed_layout(packed: PackedSequence) -> PackedLayout:
    """The index maps between ``packed`` (data (R, *)) and the padded (T, B, *) batch it holds.

    Raises:
        ValueError: ``batch_sizes`` empty or not non-increasing (not a PackedSequence made by PyTorch).
    """
    batch_sizes = packed.batch_sizes
    if batch_sizes.numel() == 0 or bool((batch_sizes[1:] > batch_sizes[:-1]).any()):
        raise ValueError(f"a PackedSequence needs non-increasing batch_sizes, got {batch_sizes.tolist()}")
    device = packed.data.device
    T, B = batch_sizes.numel(), int(batch_sizes[0])
    sizes = batch_sizes.to(device)
    offsets = torch.cumsum(sizes, 0) - sizes  # (T,) first row of each time step
    sorted_idx = packed.sorted_indices
    rank = (torch.arange(B, device=device) if packed.unsorted_indices is None
            else packed.unsorted_indices.to(device))  # rank[b]: place of sequence b in the sorted order
    valid = rank[None, :] < sizes[:, None]  # (T, B)
    rows = torch.where(valid, offsets[:, None] + rank[None, :], torch.zeros((), dtype=torch.long, device=device))
    lengths = valid.sum(0).cpu()
    step = torch.repeat_interleave(torch.arange(T, device=device), sizes)  # (R,) time step of each row
    slot = torch.arange(step.numel(), device=device) - offsets[step]  # place in the sorted order
    original = slot if sorted_idx is None else sorted_idx.to(device)[slot]
    return PackedLayout(rows.reshape(-1), valid, lengths, step * B + original)


def unpack(packed: PackedSequence, layout: PackedLayout) -> Tensor:
    """The padded batch (T, B, *) of ``packed`` (zeros past each length), like ``pad_packed_sequence``."""
    T, B = layout.valid.shape
    data = packed.data
    padded = data.index_select(0, layout.rows).view(T, B, *data.shape[1:])
    mask = layout.valid.view(T, B, *([1] * (data.dim() - 1)))
    return padded.masked_fill(~mask, 0)


def repack(padded: Tensor, packed: PackedSequence, layout: PackedLayout) -> PackedSequence:
    """``padded`` (T, B, *) packed with the layout (and sort order) of ``packed``, like ``pack_padded_sequence``."""
    data = padded.reshape(-1, *padded.shape[2:]).index_select(0, layout.positions)
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
