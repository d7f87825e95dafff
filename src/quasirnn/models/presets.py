"""The paper's model presets, defined once: the QRNN convolution widths of each model.

Every model reads ``window`` with one meaning (:func:`quasirnn.nn.resolve_windows`: an int for
every layer, or one width per layer). The widths the papers chose are named here, as a pattern
(first layer, every layer above) that fits any layer count:

- :data:`AWD_QRNN_WINDOWS`: the AWD-QRNN language model (Merity et al. 2018; QRNN §3.2): width 2
  in the first layer, 1 above.
- :data:`IMDB_WINDOWS`: the IMDb classifier (QRNN §3.1), as this project trains it: 2, then 1
  (the dense connections already carry the embeddings to every layer).
- :data:`TRANSLATOR_ENCODER_WINDOWS`, :data:`TRANSLATOR_DECODER_WINDOWS`: the character-level
  translator (QRNN §3.3): encoder 6, 2, 2, 2; decoder 2, 1, 1, 1.

:func:`legacy_windows` converts the earlier meaning of an int (first layer only, the rest 1) that
configurations and checkpoints written before the change still hold.
"""

from __future__ import annotations

from typing import NamedTuple

from quasirnn.nn.windows import Windows

__all__ = [
    "AWD_QRNN_WINDOWS",
    "IMDB_WINDOWS",
    "TRANSLATOR_DECODER_WINDOWS",
    "TRANSLATOR_ENCODER_WINDOWS",
    "WindowPattern",
    "legacy_windows",
]


class WindowPattern(NamedTuple):
    """Convolution widths as a pattern: ``first`` for the layer that reads the input, ``above``
    for every layer above it.

    Example::

        >>> TRANSLATOR_ENCODER_WINDOWS.widths(4)
        (6, 2, 2, 2)
    """

    first: int
    above: int

    def widths(self, num_layers: int) -> tuple[int, ...]:
        """The widths of ``num_layers`` layers: (first, above, …, above); empty for 0 layers."""
        return (self.first,) + (self.above,) * (num_layers - 1) if num_layers >= 1 else ()


#: The AWD-QRNN language model: 2 in the first layer, 1 above.
AWD_QRNN_WINDOWS = WindowPattern(2, 1)
#: The IMDb classifier: 2 in the first layer, 1 above.
IMDB_WINDOWS = WindowPattern(2, 1)
#: The translator's encoder (QRNN §3.3): 6 in the first layer, 2 above.
TRANSLATOR_ENCODER_WINDOWS = WindowPattern(6, 2)
#: The translator's decoder: 2 in the first layer, 1 above.
TRANSLATOR_DECODER_WINDOWS = WindowPattern(2, 1)


def legacy_windows(window: Windows, num_layers: int) -> Windows:
    """A ``window`` of the earlier meaning as per-layer widths: an int k was the first layer's
    width, the others 1, so it becomes ``(k, 1, …, 1)``; a sequence is returned as it is.

    For configurations and checkpoints written before ``window`` meant every layer. Nothing is
    checked here: the model's constructor checks what it receives.

    Example::

        >>> legacy_windows(2, 4), legacy_windows([3, 2], 2)
        ((2, 1, 1, 1), [3, 2])
    """
    if isinstance(window, int) and not isinstance(window, bool) and isinstance(num_layers, int) and num_layers >= 1:
        return WindowPattern(window, 1).widths(num_layers)
    return window
