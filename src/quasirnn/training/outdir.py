"""The rules of a training run's output directory (``--out``): never lose an earlier run, never leave an empty one.

* :func:`refuse_earlier_run`: a new run (no ``--resume``) refuses an ``--out`` that holds an
  earlier run's results — ``checkpoint.pt``, ``metrics.json`` or ``log.jsonl`` (a run whose
  checkpoint was deleted to save space still has its metrics and log) — unless ``--overwrite``.
* :func:`check_writable`: creates the directory and checks that files can be created in it.
* :func:`removed_if_unused`: a run that fails before writing anything (bad data path, bad
  option, no device) removes the directories it created, so no empty ``--out`` is left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

from quasirnn.errors import ConfigError

__all__ = ["RESULT_NAMES", "check_writable", "refuse_earlier_run", "removed_if_unused"]

#: Files whose presence marks a directory as holding an earlier run's results.
RESULT_NAMES = ("checkpoint.pt", "metrics.json", "log.jsonl")


def refuse_earlier_run(out: Union[str, Path], overwrite: bool) -> None:
    """Refuses to start a new run in ``out`` when it holds an earlier run's results (see :data:`RESULT_NAMES`).

    Args:
        out: the run's output directory (``--out``); need not exist.
        overwrite: ``--overwrite`` was given: the earlier results may be replaced.

    Raises:
        ConfigError: ``out`` holds one of :data:`RESULT_NAMES` and ``overwrite`` is False.

    Example::

        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> refuse_earlier_run(d, overwrite=False)   # empty: fine
        >>> _ = (d / "metrics.json").write_text("{}")
        >>> refuse_earlier_run(d, overwrite=False)
        Traceback (most recent call last):
        ...
        quasirnn.errors.ConfigError: ... holds an earlier run (metrics.json); ...
    """
    out = Path(out)
    found = [name for name in RESULT_NAMES if (out / name).exists()]
    if found and not overwrite:
        resume = f"continue it with --resume {out}, " if "checkpoint.pt" in found else ""
        raise ConfigError(f"{out} holds an earlier run ({', '.join(found)}); {resume}choose another --out, "
                          f"or pass --overwrite to replace it")


def check_writable(out: Union[str, Path]) -> None:
    """Creates ``out`` if needed and checks that files can be created in it.

    Raises:
        ConfigError: ``out`` (or a parent) cannot be created, is not a directory, or is not writable.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write the run to {out}: {reason}; choose another --out") from None


@contextlib.contextmanager
def removed_if_unused(out: Union[str, Path]) -> Iterator[Path]:
    """Context manager: when its body raises (any exception, Ctrl-C included), the directories of
    ``out`` that did not exist on entry and are still empty are removed, deepest first.

    A directory that holds anything (a log, a checkpoint) is kept, and so is every directory
    that existed before.

    Example::

        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> try:
        ...     with removed_if_unused(root / "runs" / "a"):
        ...         (root / "runs" / "a").mkdir(parents=True)
        ...         raise ValueError("bad data path")
        ... except ValueError:
        ...     pass
        >>> (root / "runs").exists()
        False
    """
    out = Path(out)
    missing = []
    for directory in (out, *out.parents):
        if directory.exists():
            break
        missing.append(directory)
    try:
        yield out
    except BaseException:
        for directory in missing:  # deepest first
            try:
                directory.rmdir()
            except OSError:  # not empty (or already gone): keep it and its parents
                break
        raise
