"""Argument checks shared by the layers, models and training code: one wording for one mistake."""

from __future__ import annotations

import numbers

__all__ = ["check_int", "check_probability"]


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
