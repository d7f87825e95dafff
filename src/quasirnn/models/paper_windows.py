"""The QRNN convolution widths the papers chose for each model, and :func:`layer_windows`, the
one function that gives a model's widths: the ones asked for, else the paper's.

Every model reads ``window`` with one meaning (:func:`quasirnn.nn.resolve_windows`: an int for
every layer, or one width per layer). The widths the papers chose are named here, as a pattern
(first layer, every layer above) that fits any layer count:

- :data:`AWD_QRNN_WINDOWS`: the AWD-QRNN language model (Merity et al. 2018; QRNN §3.2): width 2
  in the first layer, 1 above.
- :data:`IMDB_WINDOWS`: the IMDb classifier (QRNN §3.1), as this project trains it: 2, then 1
  (the dense connections already carry the embeddings to every layer).
- :data:`TRANSLATOR_ENCODER_WINDOWS`, :data:`TRANSLATOR_DECODER_WINDOWS`: the character-level
  translator (QRNN §3.3): encoder 6, 2, 2, 2; decoder 2, 1, 1, 1.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from quasirnn.nn.windows import Windows, resolve_windows

__all__ = [
    "AWD_QRNN_WINDOWS",
    "IMDB_WINDOWS",
    "TRANSLATOR_DECODER_WINDOWS",
    "TRANSLATOR_ENCODER_WINDOWS",
    "WindowPattern",
    "layer_windows",
]


class WindowPattern(NamedTuple):
    """Convolution widths as a pattern: ``first`` for the layer that reads the input, ``above``
    for every layer above it.

    Example::

        >>> TRANSLATOR_ENCODER_WINDOWS.widths(4), str(TRANSLATOR_ENCODER_WINDOWS)
        ((6, 2, 2, 2), '6 in the first layer, 2 above')
    """

    first: int
    above: int

    def widths(self, num_layers: int) -> tuple[int, ...]:
        """The widths of ``num_layers`` layers: (first, above, …, above); empty for 0 layers."""
        return (self.first,) + (self.above,) * (num_layers - 1) if num_layers >= 1 else ()

    def __str__(self) -> str:
        return f"{self.first} in the first layer, {self.above} above"


#: The AWD-QRNN language model: 2 in the first layer, 1 above.
AWD_QRNN_WINDOWS = WindowPattern(2, 1)
#: The IMDb classifier: 2 in the first layer, 1 above.
IMDB_WINDOWS = WindowPattern(2, 1)
#: The translator's encoder (QRNN §3.3): 6 in the first layer, 2 above.
TRANSLATOR_ENCODER_WINDOWS = WindowPattern(6, 2)
#: The translator's decoder: 2 in the first layer, 1 above.
TRANSLATOR_DECODER_WINDOWS = WindowPattern(2, 1)


def layer_windows(window: Optional[Windows], paper: WindowPattern, num_layers: int,
                  name: str = "window") -> tuple[int, ...]:
    """The convolution width of each of ``num_layers`` layers: ``window`` as
    :func:`quasirnn.nn.resolve_windows` reads it (an int for every layer, or one per layer), or,
    when it is None, the ``paper``'s pattern.

    Raises:
        ValueError: what :func:`~quasirnn.nn.resolve_windows` raises (its
            :class:`~quasirnn.nn.windows.WindowCountError` for a sequence of another length),
            naming ``name``.

    Example::

        >>> layer_windows(None, AWD_QRNN_WINDOWS, 3), layer_windows(3, AWD_QRNN_WINDOWS, 3)
        ((2, 1, 1), (3, 3, 3))
    """
    return resolve_windows(paper.widths(num_layers) if window is None else window, num_layers, name)
