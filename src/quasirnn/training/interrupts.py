"""How a training run is asked to stop: SIGINT (Ctrl-C) and SIGTERM, turned into a request the loop reads.

While :class:`StopSignals` is active, the first SIGINT or SIGTERM only records the request; the
trainer finishes the current step, saves a checkpoint and stops. Once that checkpoint is saved
(:meth:`StopSignals.saved`), a further signal aborts at once with KeyboardInterrupt — "Ctrl-C
again" during the final evaluation. Repeated signals before the save are ignored, because
``torchrun`` forwards the Ctrl-C its workers already got from the terminal.

Tests stop a run at a known step with ``QUASIRNN_TEST_PAUSE_AT_STEP=N``: after step N (and its
checkpoint, if one is due) the process prints ``paused at step N`` and waits for a signal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Optional

__all__ = ["INTERRUPTED_STATUS", "PAUSE_ENV", "StopSignals", "pause_if_requested"]

#: Environment variable of the test pause (see the module docstring).
PAUSE_ENV = "QUASIRNN_TEST_PAUSE_AT_STEP"
#: Exit status of a command whose training a Ctrl-C stopped (128 + SIGINT, the shell's convention), after it
#: saved, evaluated and reported: ``quasirnn lm train ... && deploy`` does not deploy an interrupted run.
INTERRUPTED_STATUS = 128 + signal.SIGINT
_NAMES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class StopSignals:
    """Context manager that catches SIGINT and SIGTERM while a run trains (main thread only;
    elsewhere it does nothing and signals keep their handlers).

    Attributes:
        signum: the first signal received (``signal.SIGINT`` or ``signal.SIGTERM``), or None.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._saved = False
        self._previous: dict[int, object] = {}

    @property
    def reason(self) -> Optional[str]:
        """``"interrupted"`` (SIGINT), ``"terminated"`` (SIGTERM), or None when no signal came."""
        return None if self.signum is None else _NAMES[self.signum]

    def saved(self) -> None:
        """The stop checkpoint is written: from now on a further signal aborts (KeyboardInterrupt)."""
        self._saved = True

    def _handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
        elif self._saved:
            raise KeyboardInterrupt

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in _NAMES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def pause_if_requested(step: int, signals: StopSignals, enabled: bool = True) -> None:
    """Test hook: after step ``$QUASIRNN_TEST_PAUSE_AT_STEP``, prints ``paused at step N`` and
    waits until a signal arrives (SIGKILL ends the process here; SIGINT/SIGTERM stop the run).
    Nothing happens when the variable is unset or ``enabled`` is False (ranks other than 0 go
    on and wait for rank 0 at their next collective operation)."""
    at = os.environ.get(PAUSE_ENV)
    if not enabled or not at or int(at) != step:
        return
    print(f"paused at step {step}", flush=True)
    sys.stdout.flush()
    while signals.signum is None:
        signal.pause()
