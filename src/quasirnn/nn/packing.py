"""PackedSequence ↔ padded batch as one gather each way (for :class:`~quasirnn.nn.stack.StackedRecurrent`).

``torch.nn.utils.rnn.pad_packed_sequence`` and ``pack_padded_sequence`` copy one time step at a
time, forward and backward (about 4·T small copies per layer call); here each direction is a
single ``index_select``, with the (T, B) index built once from the ``batch_sizes`` and the sort
permutation. Packed rows and the valid padded positions correspond one to one, so the backward
of each direction is the other direction's gather (no scatter-add, which is slow on the CPU).
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
        lengths: LongTensor (B,) on the data's device, in the original batch order (the values
            ``pad_packed_sequence`` returns, there on the CPU; kept on the device: no host sync).
        positions: LongTensor (R,), R = number of rows of ``data``: the padded position t·B + b of each row.
        padding: LongTensor (T·B − R,): the padded positions t·B + b past each length.
    """

    rows: Tensor
    valid: Tensor
    lengths: Tensor
    positions: Tensor
    padding: Tensor


def packed_layout(packed: PackedSequence) -> PackedLayout:
    """The index maps between ``packed`` (data (R, *)) and the padded (T, B, *) batch it holds.

    Raises:
        ValueError: ``batch_sizes`` empty or not non-increasing (not a PackedSequence made by PyTorch).
    """
    batch_sizes = packed.batch_sizes
    compiling = torch.compiler.is_compiling()
    if batch_sizes.numel() == 0 or (not compiling and bool((batch_sizes[1:] > batch_sizes[:-1]).any())):
        raise ValueError(f"a PackedSequence needs non-increasing batch_sizes, got {batch_sizes.tolist()}")
    device = packed.data.device
    R = packed.data.shape[0]
    # B from the sort permutation where there is one (a shape: no read of batch_sizes' values)
    T = batch_sizes.numel()
    B = int(batch_sizes[0]) if packed.sorted_indices is None else packed.sorted_indices.numel()
    sizes = batch_sizes.to(device)
    offsets = torch.cumsum(sizes, 0) - sizes  # (T,) first row of each time step
    sorted_idx = packed.sorted_indices
    rank = (torch.arange(B, device=device) if packed.unsorted_indices is None
            else packed.unsorted_indices.to(device))  # rank[b]: place of sequence b in the sorted order
    valid = rank[None, :] < sizes[:, None]  # (T, B)
    rows = torch.where(valid, offsets[:, None] + rank[None, :], torch.zeros((), dtype=torch.long, device=device))
    lengths = valid.sum(0)
    step = torch.repeat_interleave(torch.arange(T, device=device), sizes, output_size=R)  # (R,) step of each row
    slot = torch.arange(R, device=device) - offsets[step]  # place in the sorted order
    original = slot if sorted_idx is None else sorted_idx.to(device)[slot]
    # the T·B − R padded positions, in order (a static size: no host read of the count)
    padding = torch.nonzero_static((~valid).reshape(-1), size=T * B - R).squeeze(1)
    return PackedLayout(rows.reshape(-1), valid, lengths, step * B + original, padding)


def _gather_padded(data: Tensor, layout: PackedLayout) -> Tensor:
    T, B = layout.valid.shape
    flat = data.index_select(0, layout.rows)  # (T·B, *); padded positions hold a copy of row 0 ...
    if layout.padding.numel():
        flat.index_fill_(0, layout.padding, 0)  # ... zeroed here, touching only those rows
    return flat.view(T, B, *data.shape[1:])


def _gather_packed(padded: Tensor, layout: PackedLayout) -> Tensor:
    return padded.reshape(-1, *padded.shape[2:]).index_select(0, layout.positions)


class _Relayout(torch.autograd.Function):
    """Between packed rows data (R, *) and padded positions (T, B, *): ``to_padded`` True unpacks
    (zeros past each length), False repacks (reads the valid positions only). The map is a
    bijection between the rows and the valid positions, so each direction's gradient is the other
    direction: a gather too (no scatter-add)."""

    @staticmethod
    def forward(ctx, x: Tensor, layout: PackedLayout, to_padded: bool) -> Tensor:
        ctx.layout, ctx.to_padded = layout, to_padded
        return _gather_padded(x, layout) if to_padded else _gather_packed(x, layout)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Relayout.apply(grad, ctx.layout, not ctx.to_padded), None, None


def unpack(packed: PackedSequence, layout: PackedLayout) -> Tensor:
    """The padded batch (T, B, *) of ``packed`` (zeros past each length), like ``pad_packed_sequence``.

    Differentiable; the gradient is gathered back in one pass (no scatter-add)."""
    return _Relayout.apply(packed.data, layout, True)


def repack(padded: Tensor, packed: PackedSequence, layout: PackedLayout) -> PackedSequence:
    """``padded`` (T, B, *) packed with the layout (and sort order) of ``packed``, like ``pack_padded_sequence``.

    Differentiable; the gradient (zero on padded positions) is one gather, its padded rows zeroed."""
    data = _Relayout.apply(padded, layout, False)
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
