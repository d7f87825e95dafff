"""The one meaning of a QRNN stack's ``window``: an int for every layer, or one width per layer."""

from __future__ import annotations

from typing import Sequence, Union

from quasirnn._checks import check_int

__all__ = ["WindowCountError", "Windows", "resolve_windows"]

#: What a ``window`` argument may be: one width for every layer, or one width per layer.
Windows = Union[int, Sequence[int]]


class WindowCountError(ValueError):
    """A sequence of widths that is not one width per layer (a ValueError; :func:`resolve_windows`).

    Attributes:
        name: the argument's name; count: the widths given; num_layers: the layers.
    """

    def __init__(self, name: str, window: Sequence[int], num_layers: int) -> None:
        self.name, self.count, self.num_layers = name, len(window), num_layers
        super().__init__(f"{name} must be an integer >= 1 (every layer) or a sequence of {num_layers} integers "
                         f">= 1 (one per layer), got {window!r}")


def resolve_windows(window: Windows, num_layers: int, name: str = "window") -> tuple[int, ...]:
    """The convolution width of each of ``num_layers`` layers (QRNN §2: the masked convolution of
    width k over time), as ``torch.nn.Conv1d``'s ``kernel_size`` reads an int: the same for all.

    Args:
        window: an int k ≥ 1 for every layer, or a sequence of ``num_layers`` ints ≥ 1, one per
            layer (the first entry for the layer that reads the input).
        num_layers: L ≥ 1.
        name: the argument's name in the caller's signature, for the error message.

    Returns:
        A tuple of L ints ≥ 1.

    Raises:
        ValueError: ``num_layers`` not an int ≥ 1; ``window`` neither an int ≥ 1 nor a sequence
            of L ints ≥ 1 (bools refused); the message names ``name``, L and what was given. A
            sequence of another length raises :class:`WindowCountError`.

    Example::

        >>> from quasirnn.nn import resolve_windows
        >>> resolve_windows(2, 3), resolve_windows([6, 2, 2], 3)
        ((2, 2, 2), (6, 2, 2))
    """
    check_int("num_layers", num_layers)
    if isinstance(window, (int, str, bytes)) or not isinstance(window, Sequence):
        check_int(name, window)  # anything but a sequence must be one width
        return (window,) * num_layers
    if len(window) != num_layers:
        raise WindowCountError(name, window, num_layers)
    for index, width in enumerate(window):
        check_int(f"{name}[{index}]", width)
    return tuple(window)
