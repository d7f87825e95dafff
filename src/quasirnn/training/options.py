"""The command-line face of a configuration field: its :class:`Option` (help, value syntax,
choices, metavar, help group), and the value parsers argparse calls.

A field of a run configuration (:mod:`quasirnn.training.config`) that the ``train`` commands
offer as an option carries an :class:`Option` in its metadata;
``quasirnn.cli.common.add_config_options`` builds the argparse options from them. The parsers
read the text (an integer, ≥ 1, a comma list); what a value means is checked where it is
consumed (the configurations' ``__post_init__``, the models' constructors; ``--window``'s
widths by :func:`quasirnn.nn.resolve_windows` when the model is built). A parser's error is one
line, e.g. ``must be >= 1, got 0``.

Example::

    >>> positive_int("3"), window_list("6,2,2"), window_list("2"), cutoff_list("200,1000"), epoch_list("12")
    (3, [6, 2, 2], 2, [200, 1000], [12])
    >>> probability("1.5")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be in [0, 1), got 1.5
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

__all__ = ["DATA", "EVALUATION", "EVAL_BATCH_HELP", "EXECUTION", "GROUPS", "MODEL", "OPTIMISATION", "Option",
           "RUN_LENGTH", "cutoff_list", "epoch_list", "nonnegative_float", "nonnegative_int", "positive_int",
           "probability", "window_list"]

#: The help groups of a ``train`` command, in the order ``--help`` lists them.
DATA = "data and output"
MODEL = "model"
OPTIMISATION = "optimisation"
EVALUATION = "evaluation (can change on --resume)"
RUN_LENGTH = "run length (can change on --resume)"
EXECUTION = "execution and logging"
GROUPS = (DATA, MODEL, OPTIMISATION, EVALUATION, RUN_LENGTH, EXECUTION)

#: The help of every command's ``eval_batch_size`` (``{default}``: the command's default).
EVAL_BATCH_HELP = "validation/test batch size (default: {default})"


@dataclass(frozen=True)
class Option:
    """How the command line gives a configuration field (``--emb-size`` for ``emb_size``).

    Attributes:
        help: the help text; ``{default}`` stands for the command's default, ``{metric}`` for its
            validation metric (e.g. "validation BLEU").
        type: the value parser (None: the text itself; a bool field is ``--x/--no-x``).
        choices, metavar: as in ``argparse.add_argument``.
        group: one of :data:`GROUPS`, or None for the command's top-level options.
    """

    help: str
    type: Optional[Callable[[str], Any]] = None
    choices: Optional[Sequence[str]] = None
    metavar: Optional[str] = None
    group: Optional[str] = None


# ---------------------------------------------------------------------------- value parsers


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _integers(text: str, what: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts: epochs, sizes, batch sizes, threads, ...)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0 (limits where 0 means "none", patience)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def probability(text: str) -> float:
    """A float in [0, 1) (dropout-like probabilities)."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A float ≥ 0."""
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def window_list(text: str) -> Union[int, list[int]]:
    """``--window``: an integer, or a comma-separated list of integers (one per layer); the model
    checks the widths (:func:`quasirnn.nn.resolve_windows`: each ≥ 1, one per layer)."""
    values = _integers(text, "an integer or a comma-separated list")
    return values[0] if len(values) == 1 else values


def cutoff_list(text: str) -> list[int]:
    """``--cutoffs``: a comma-separated list of increasing integers ≥ 1."""
    values = _integers(text, "a comma-separated list of integers")
    if any(v < 1 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise argparse.ArgumentTypeError(f"cutoffs must be increasing integers >= 1, got {text!r}")
    return values


def epoch_list(text: str) -> list[int]:
    """``--when``: a comma-separated list of epoch numbers, each ≥ 1."""
    values = _integers(text, "a comma-separated list of epochs")
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"epochs must be integers >= 1, got {text!r}")
    return values
