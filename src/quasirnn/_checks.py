"""Argument checks shared by the layers, models and training code: one wording for one mistake."""

from __future__ import annotations

import numbers

__all__ = ["QRNNOnlyError", "check_int", "check_probability", "check_proj_size", "check_qrnn_only"]


def check_int(name: str, value, minimum: int = 1) -> None:
    """Checks that ``value`` is a Python integer (not a bool) of at least ``minimum``.

    Args:
        name: the argument's name, as the caller's signature spells it.
        value: what the caller passed.
        minimum: the smallest value allowed.

    Raises:
        ValueError: ``value`` is not an ``int``, is a ``bool``, or is below ``minimum``; the
            message names the argument, the expected range and the value received.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_probability(name: str, value) -> None:
    """Checks that ``value`` is a probability in [0, 1) (dropout, zoneout: 1 would drop everything).

    Raises:
        ValueError: ``value`` is not a real number in [0, 1) (NaN included).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")


def check_proj_size(proj_size, hidden_size) -> int:
    """Checks ``proj_size`` as ``nn.LSTM`` does: an integer in [0, hidden_size) (0: no projection).

    ``hidden_size`` may be a per-layer list; the upper bound is then checked by the layers.

    Raises:
        ValueError: ``proj_size`` is not an integer >= 0, or is >= an int ``hidden_size``.

    Returns:
        ``proj_size`` itself.
    """
    check_int("proj_size", proj_size, minimum=0)
    if proj_size and isinstance(hidden_size, int) and proj_size >= hidden_size:
        raise ValueError(f"proj_size must be smaller than hidden_size ({hidden_size}), as in nn.LSTM, got {proj_size}")
    return proj_size


class QRNNOnlyError(ValueError):
    """An option of the QRNN alone set with another cell (a ValueError; :func:`check_qrnn_only`).

    Attributes:
        name: the argument's name; cell: the cell it was given with.
    """

    def __init__(self, name: str, value, cell: str) -> None:
        self.name, self.cell = name, cell
        super().__init__(f"{name} is implemented for the qrnn cell only, got {name}={value!r} with cell={cell!r}")


def check_qrnn_only(name: str, value, cell: str) -> None:
    """Checks that an option of the QRNN alone (``zoneout``, QRNN §2.1) is off unless ``cell`` is "qrnn".

    Raises:
        QRNNOnlyError: ``value`` is set (nonzero) and ``cell`` is not "qrnn"; the message names both.
    """
    if cell != "qrnn" and value:
        raise QRNNOnlyError(name, value, cell)
