"""One writer per run directory: ``OUT/run.lock``, held by the process that trains into ``OUT``.

A ``train`` command (new run or ``--resume``) takes the lock before it writes any file of its
output directory and removes it when it ends, whatever the way: return, exception, Ctrl-C, or
SIGTERM (while the lock is held, a SIGTERM that would end the process on the spot raises
``SystemExit(143)`` instead, so the lock is released on the way out). A second writer gets a
:class:`RunLockedError` naming the holder, before touching anything.

The lock file holds one JSON object: the owner's ``pid``, ``host`` and start time ``since``
(local time, ISO 8601), and a random ``token``. It is created atomically with its content
(written to a private temporary file, then hard-linked to ``run.lock``, which fails if the name
exists; ``O_CREAT | O_EXCL`` where the file system has no hard links), so nobody ever reads a
half-written lock. A lock left behind by a process that no longer runs on this host (``kill -9``,
a power cut) is *stale*: the next writer takes it over and says so in one line on stderr. A lock
of another host is never taken over (its process cannot be checked from here): the error names it
and the file to delete once that run is known to be over.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> with RunLock(out):
    ...     holder = read_holder(out / LOCK_NAME)
    ...     RunLock(out).acquire()
    Traceback (most recent call last):
    ...
    quasirnn.training.run_lock.RunLockedError: ... is being written by another run: pid ... since ...
    >>> holder.pid == os.getpid(), (out / LOCK_NAME).exists()
    (True, False)
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import sys
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from quasirnn.errors import QuasirnnError

__all__ = ["LOCK_NAME", "Holder", "RunLock", "RunLockedError", "read_holder"]

#: File name of the lock inside a run's output directory.
LOCK_NAME = "run.lock"
#: Exit status of a process that SIGTERM ended while it held a lock (the shell's 128 + signal).
_SIGTERM_STATUS = 128 + signal.SIGTERM


class RunLockedError(QuasirnnError):
    """Another process writes the run directory (or a lock file there cannot be read).

    Attributes:
        holder: the lock's owner, or None when the lock file does not name one.
    """

    def __init__(self, message: str, holder: Optional["Holder"] = None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock: process id, host name, start time (ISO 8601) and a random token."""

    pid: int
    host: str
    since: str
    token: str

    @classmethod
    def this_process(cls) -> "Holder":
        """The holder this process writes into a lock it takes."""
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), since, uuid.uuid4().hex)

    def describe(self) -> str:
        """``pid 4242 on host gpu3 since 2025-01-31T09:12:00+01:00``."""
        return f"pid {self.pid} on host {self.host} since {self.since}"

    def is_running(self) -> bool:
        """Whether the holder's process may still run: True for another host (it cannot be checked
        from here) and on Windows; on this host, whether the pid exists and is not a zombie."""
        if self.host != socket.gethostname() or os.name == "nt":
            return True
        return _pid_running(self.pid)


def _pid_running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, as another user's
        return True
    try:  # a zombie (killed, its parent has not collected it yet) writes nothing
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_holder(path: Union[str, Path]) -> Optional[Holder]:
    """The holder named in the lock file ``path``; None when the file does not name one.

    Raises:
        FileNotFoundError: there is no lock file.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["since"]), str(data["token"]))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _print_warning(message: str) -> None:
    print(f"quasirnn: {message}", file=sys.stderr, flush=True)


class RunLock:
    """The lock of the run directory ``directory`` (see the module docstring); a context manager.

    Args:
        directory: the run's output directory; it must exist.
        warn: prints the one line that says a stale lock was taken over (default: stderr,
            ``quasirnn: taking over the stale lock …``).

    Attributes:
        path: the lock file, ``directory/run.lock``.
        holder: this process's :class:`Holder` while the lock is held, else None.
    """

    def __init__(self, directory: Union[str, Path], warn: Callable[[str], None] = _print_warning) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.warn = warn
        self.holder: Optional[Holder] = None
        self._previous_sigterm = None

    def acquire(self) -> None:
        """Takes the lock: creates the lock file, after removing a stale one (with one line of ``warn``).

        Raises:
            RunLockedError: a running process holds the lock (its pid, host and start time are
                named), a process of another host does, or the lock file does not name a holder.
            OSError: the lock file cannot be created (e.g. the directory is not writable).
        """
        me = Holder.this_process()
        replaced: Optional[Holder] = None
        for _ in range(100):  # each round either takes the lock or removes a stale one
            if self._create(me):
                self.holder = me
                if replaced is not None:
                    self.warn(f"taking over the stale lock of {self.directory}: {replaced.describe()}, "
                              f"which no longer runs")
                return
            try:
                holder = read_holder(self.path)
            except FileNotFoundError:  # released meanwhile: try again
                continue
            if holder is None:
                raise RunLockedError(f"{self.directory} is locked by {self.path}, which names no holder; if no run "
                                     f"writes {self.directory}, delete {self.path}")
            if holder.is_running():
                raise RunLockedError(self._held_message(holder), holder)
            if self._remove_stale(holder):
                replaced = holder
        raise RunLockedError(f"{self.directory}: could not take {self.path} (other processes keep replacing it)")

    def check(self) -> None:
        """Raises what :meth:`acquire` would when a running process holds the lock, without taking it.

        Raises:
            RunLockedError: a running process (or one of another host) holds the lock.
        """
        try:
            holder = read_holder(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return
        if holder is not None and holder.is_running():
            raise RunLockedError(self._held_message(holder), holder)

    def release(self) -> None:
        """Removes the lock file if this process holds it (idempotent)."""
        if self.holder is None:
            return
        try:
            if read_holder(self.path) == self.holder:
                self.path.unlink()
        except FileNotFoundError:
            pass
        self.holder = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        self.release()

    def _held_message(self, holder: Holder) -> str:
        message = f"{self.directory} is being written by another run: {holder.describe()}"
        if holder.host != socket.gethostname():
            return (f"{message} (another machine, so its lock is not taken over: if that run is over, "
                    f"delete {self.path})")
        return f"{message}; wait for it to end or choose another --out"

    def _create(self, me: Holder) -> bool:
        """Creates the lock file holding ``me``, atomically; False when it exists."""
        data = (json.dumps(asdict(me)) + "\n").encode("utf-8")
        temporary = self.directory / f".{LOCK_NAME}.{me.token}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: an exclusive create, then the content
            return self._create_exclusive(data)
        finally:
            temporary.unlink()

    def _create_exclusive(self, data: bytes) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True

    def _remove_stale(self, stale: Holder) -> bool:
        """Moves the stale lock of ``stale`` aside and deletes it; False when the lock file changed meanwhile
        (another process took the stale lock over first: it is put back)."""
        aside = self.directory / f".{LOCK_NAME}.stale.{os.getpid()}"
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return False
        moved = read_holder(aside)
        if moved != stale:  # a new holder's lock: give it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        aside.unlink()
        return moved == stale


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(_SIGTERM_STATUS)
