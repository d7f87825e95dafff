"""User-facing errors of quasirnn.

Every error that a user can fix (a missing data file, a checkpoint of the wrong kind, an
unavailable device) derives from :class:`QuasirnnError`. The command line catches this base
class and prints ``quasirnn: error: <message>`` without a traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

__all__ = ["QuasirnnError", "DataError", "CheckpointError", "ConfigError", "value_errors_as_config_errors"]


class QuasirnnError(Exception):
    """Base class of the errors a user can act on; the message says what to do."""


class DataError(QuasirnnError):
    """A corpus could not be found, downloaded, verified or parsed.

    The message names the directory or file involved and the names that were expected.
    """


class CheckpointError(QuasirnnError):
    """A checkpoint is missing, corrupted, not a quasirnn checkpoint, or of another model kind/config."""


class ConfigError(QuasirnnError):
    """An invalid option value or combination (e.g. ``--device cuda`` on a machine without a GPU)."""


@contextmanager
def value_errors_as_config_errors() -> Iterator[None]:
    """Runs the block with a :class:`ValueError` (a constructor's rule, e.g. a model's) raised as a :class:`ConfigError`.

    Example::

        >>> with value_errors_as_config_errors():
        ...     int("x")
        Traceback (most recent call last):
        quasirnn.errors.ConfigError: invalid literal for int() with base 10: 'x'
    """
    try:
        yield
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
