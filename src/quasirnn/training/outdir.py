"""The rules of a training run's output directory (``--out``): one writer, never lose an earlier run,
never leave an empty one.

* :func:`refuse_earlier_run`: a new run (no ``--resume``) refuses an ``--out`` that another
  process writes, or that holds an earlier run's results — ``checkpoint.pt``, ``metrics.json`` or ``log.jsonl`` (a run whose
  checkpoint was deleted to save space still has its metrics and log) — unless ``--overwrite``.
* :func:`check_writable`: creates the directory and checks that files can be created in it.
* :func:`sole_writer`: rank 0 checks the directory and takes its lock
  (:class:`~quasirnn.training.run_lock.RunLock`) for as long as the run writes it; when it cannot,
  every rank ends with its one-line error before any file of the run is touched.
* :func:`removed_if_unused`: a run that fails before writing anything (bad data path, bad
  option, no device) removes the directories it created, so no empty ``--out`` is left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

from quasirnn.errors import ConfigError
from quasirnn.training.distributed import Distributed
from quasirnn.training.run_lock import RunLock, RunLockedError

__all__ = ["RESULT_NAMES", "check_writable", "refuse_earlier_run", "removed_if_unused", "sole_writer"]

#: Files whose presence marks a directory as holding an earlier run's results.
RESULT_NAMES = ("checkpoint.pt", "metrics.json", "log.jsonl")


def refuse_earlier_run(out: Union[str, Path], overwrite: bool) -> None:
    """Refuses to start a new run in ``out`` when another process writes it (its ``run.lock``) or it
    holds an earlier run's results (see :data:`RESULT_NAMES`).

    Args:
        out: the run's output directory (``--out``); need not exist.
        overwrite: ``--overwrite`` was given: the earlier results may be replaced.

    Raises:
        RunLockedError: a running process holds the lock of ``out`` (``overwrite`` or not).
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
    RunLock(out).check()
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


@contextlib.contextmanager
def sole_writer(out: Union[str, Path], dist: Distributed) -> Iterator[Optional[RunLock]]:
    """Context manager: the run's process writes ``out`` alone for the duration of the body.

    Rank 0 (the only rank that writes files) creates ``out`` and checks it is writable
    (:func:`check_writable`), then takes ``out/run.lock``; the lock is released when the body
    ends, by any exception, Ctrl-C or SIGTERM included. With several ranks, all of them learn
    whether rank 0 got it, so a refused lock ends every rank at once rather than leaving the
    others waiting for it.

    Yields:
        The lock on rank 0, None on the other ranks.

    Raises:
        RunLockedError: another process writes ``out`` (on rank 0: its holder named; on the other
            ranks: rank 0's message).
        ConfigError: ``out`` cannot be created or written.

    Example::

        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "run"
        >>> with sole_writer(out, Distributed()) as lock:
        ...     sorted(p.name for p in out.iterdir())
        ['run.lock']
        >>> sorted(p.name for p in out.iterdir())
        []
    """
    with contextlib.ExitStack() as stack:
        lock, failure = None, None
        if dist.is_main:
            try:
                check_writable(out)
                lock = stack.enter_context(RunLock(out))
            except (RunLockedError, ConfigError) as exc:
                failure = exc
            except OSError as exc:  # the lock file could not be created
                failure = ConfigError(f"cannot write the run to {out}: {exc.strerror or exc}; choose another --out")
        if dist.enabled:  # every rank learns rank 0's outcome
            message = dist.gather(None if failure is None else str(failure))[0]
            if failure is None and message is not None:
                failure = RunLockedError(f"rank 0 could not start the run: {message}")
        if failure is not None:
            raise failure
        yield lock
