"""User-facing errors of quasirnn.

Every error that a user can fix (a missing data file, a checkpoint of the wrong kind, an
unavailable device) derives from :class:`QuasirnnError`. The command line catches this base
class and prints ``quasirnn: error: <message>`` without a traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["QuasirnnError", "DataError", "CheckpointError", "ConfigError"]


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
