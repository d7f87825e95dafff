"""Right-padded batches with per-sequence ``lengths``: the check, the valid mask and the reversal
within each length, written once for the stacks (:mod:`quasirnn.nn.stack`) and the models."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_lengths", "reverse_index", "reverse_padded", "valid_mask"]


def check_lengths(lengths, T: int, B: int, device=None, name: str = "lengths") -> Tensor:
    """``lengths`` as a (B,) int64 tensor on ``device``, checked to lie in [1, T].

    The range check costs a host synchronisation on an accelerator, so it is exact (a ValueError)
    where that is free: eager mode with ``lengths`` on the CPU. On CUDA it is queued on the device
    with ``torch._assert_async`` (a device-side assert, raised at the next synchronisation), and
    under ``torch.compile`` it is left out (a data-dependent branch would break the graph). Type
    and shape are always checked (they are known on the host).

    Args:
        lengths: (B,) integer tensor (or a list / tuple of ints): each sequence's real length.
        T: the padded length; B: the batch size.
        device: where the result goes; None keeps ``lengths``' device.
        name: the argument's name, for the messages.

    Returns:
        LongTensor (B,) on ``device``.

    Raises:
        TypeError: not an integer tensor (float and bool refused).
        ValueError: not of shape (B,); on the CPU, a length outside [1, T].

    Example::

        >>> import torch
        >>> from quasirnn.nn.lengths import check_lengths
        >>> check_lengths([3, 1], T=4, B=2)
        tensor([3, 1])
        >>> check_lengths(torch.tensor([5, 1]), T=4, B=2)
        Traceback (most recent call last):
        ...
        ValueError: lengths must lie in [1, T] = [1, 4], got values from 1 to 5
    """
    if isinstance(lengths, (list, tuple)):
        lengths = torch.tensor(lengths, dtype=torch.long)
    if not isinstance(lengths, Tensor) or lengths.dtype.is_floating_point or lengths.dtype.is_complex \
            or lengths.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (B,), got {getattr(lengths, 'dtype', type(lengths))}")
    if tuple(lengths.shape) != (B,):
        raise ValueError(f"{name} must have shape (B,) = ({B},), got {tuple(lengths.shape)}")
    if B and not torch.compiler.is_compiling():
        if lengths.device.type == "cpu":
            low, high = int(lengths.min()), int(lengths.max())
            if low < 1 or high > T:
                raise ValueError(f"{name} must lie in [1, T] = [1, {T}], got values from {low} to {high}")
        else:
            torch._assert_async(((lengths >= 1) & (lengths <= T)).all(), f"{name} must lie in [1, T] = [1, {T}]")
    return lengths.to(device=device, dtype=torch.long)


def valid_mask(lengths: Tensor, T: int) -> Tensor:
    """The (T, B) bool mask of a right-padded batch: True at step t of sequence b iff t < lengths[b].

    Example::

        >>> valid_mask(torch.tensor([2, 3]), 3).int()
        tensor([[1, 1],
                [1, 1],
                [0, 1]], dtype=torch.int32)
    """
    return torch.arange(T, device=lengths.device)[:, None] < lengths[None, :]


def reverse_index(lengths: Tensor, T: int) -> Tensor:
    """The (T, B) time index that reverses each sequence within its own length, padding in place:
    ``index[t, b] = lengths[b] − 1 − t`` for t < lengths[b], else t (an involution).

    Example::

        >>> reverse_index(torch.tensor([2, 3]), 3).t()
        tensor([[1, 0, 2],
                [2, 1, 0]])
    """
    steps = torch.arange(T, device=lengths.device)[:, None]
    return torch.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverses each column of a right-padded batch within its own length; padding stays in place.

    Args:
        x: (T, B) or (T, B, F), any dtype.
        lengths: LongTensor (B,) in [1, T], on ``x``'s device.

    Returns:
        A tensor like ``x`` with ``out[t, b] = x[lengths[b] − 1 − t, b]`` for t < lengths[b].

    Example::

        >>> reverse_padded(torch.tensor([[1, 4], [2, 5], [0, 6]]), torch.tensor([2, 3])).t()
        tensor([[2, 1, 0],
                [6, 5, 4]])
    """
    index = reverse_index(lengths, x.shape[0])
    if x.dim() == 3:
        index = index[..., None].expand_as(x)
    return x.gather(0, index)
