"""A run's record of every step: ``OUT/log.jsonl``, and TensorBoard scalars when ``tensorboard`` is installed.

``log.jsonl`` holds one JSON object a line, appended and flushed as the run goes::

    {"split": "train", "step": 12, "epoch": 0.0412, "loss": 5.83, "ppl": 340.2, "lr": 0.002,
     "tokens": 2240, "tokens_per_s": 5012.3, "train_time_s": 5.41, "time": 1795000000.1}
    {"split": "valid", "step": 290, "epoch": 1.0, "loss": 5.1, "ppl": 164.0, "lr": 0.002, ...}

``split`` is ``train`` (one line per optimizer step), ``valid`` or ``test``; the metric is
``ppl`` (language models), ``accuracy`` (classifiers) or ``bleu`` (translators, validation and
test only); ``train_time_s`` is the training time of the whole run (all resumed invocations) and
``time`` the wall clock (Unix seconds). A resumed run first drops the lines of steps after its
checkpoint, which it trains again.

Each record is appended with one ``write`` of the whole line to a file opened with ``O_APPEND``,
so a reader (``quasirnn plot``) never sees half a line of a run that is writing; a line damaged
anyway (cut by a crash or a full disk, or interleaved by a run from before ``run.lock``) is
skipped by :func:`read_log` with one warning line naming the file and the line number.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from quasirnn.checkpoint_file import atomic_write_text

__all__ = ["LOG_NAME", "RunLog", "finite", "read_log"]

#: File name of the step log inside a run's output directory.
LOG_NAME = "log.jsonl"
#: Folder of the TensorBoard event files inside a run's output directory.
TENSORBOARD_DIR = "tensorboard"


def finite(x: Optional[float]) -> Optional[float]:
    """``x``, or None when it is None, NaN or infinite (JSON has no NaN)."""
    return x if x is not None and math.isfinite(x) else None


def _print_warning(message: str) -> None:
    print(f"quasirnn: warning: {message}", file=sys.stderr, flush=True)


def read_log(path: Path, warn: Optional[Callable[[str], None]] = _print_warning) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` file, in order.

    A line that is not a JSON object (cut by a crash, or damaged otherwise) is skipped and reported:
    ``warn`` gets one line naming the file and the damaged line numbers (default: printed on stderr
    as ``quasirnn: warning: …``; None: not reported).

    Raises:
        OSError: the file cannot be read.

    Example::

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "log.jsonl"
        >>> _ = path.write_text('{"split": "train", "step": 1}\\n{"split": "tr\\n{"split": "train", "step": 2}\\n')
        >>> [r["step"] for r in read_log(path, warn=print)]
        /.../log.jsonl: skipped damaged line 2 (not a JSON record)
        [1, 2]
    """
    records, damaged = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                damaged.append(number)
    if damaged and warn is not None:
        shown = ", ".join(map(str, damaged[:5])) + (", …" if len(damaged) > 5 else "")
        lines = f"line {shown}" if len(damaged) == 1 else f"{len(damaged)} lines ({shown})"
        warn(f"{path}: skipped damaged {lines} (not a JSON record)")
    return records


def _tensorboard_writer(directory: Path, purge_step: Optional[int]):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(directory), purge_step=purge_step)


class RunLog:
    """Appends step, validation and test records to ``OUT/log.jsonl`` (and TensorBoard).

    Args:
        out: the run's output directory (created by the caller).
        enabled: False writes nothing (ranks other than 0).
        resume_step: None starts a new log (replacing an old one); an int keeps the records of
            steps up to it (those of a resumed checkpoint) and drops the later ones.
        tensorboard: also write TensorBoard scalars to ``OUT/tensorboard`` when the package imports.

    Example::

        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> log = RunLog(out, tensorboard=False)
        >>> log.write("train", 10, {"loss": 5.25, "ppl": float("inf")})
        >>> log.close()
        >>> [(r["split"], r["step"], r["loss"], r["ppl"]) for r in read_log(out / "log.jsonl")]
        [('train', 10, 5.25, None)]
    """

    def __init__(self, out: Path, enabled: bool = True, resume_step: Optional[int] = None,
                 tensorboard: bool = True) -> None:
        self.path = Path(out) / LOG_NAME
        self.enabled = enabled
        self._fd: Optional[int] = None
        self._tb = None
        if not enabled:
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_log(self.path) if r.get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        else:
            flags |= os.O_TRUNC
        self._fd = os.open(self.path, flags, 0o666)
        if tensorboard:
            self._tb = _tensorboard_writer(Path(out) / TENSORBOARD_DIR, None if resume_step is None else resume_step + 1)

    def write(self, split: str, step: int, values: dict[str, Any]) -> None:
        """Appends ``{"split": split, "step": step, **values, "time": now}`` as one line, with one write
        (non-finite floats become null)."""
        if not self.enabled:
            return
        record = {"split": split, "step": step}
        record.update({k: finite(v) if isinstance(v, float) else v for k, v in values.items()})
        record["time"] = round(time.time(), 3)
        line = (json.dumps(record) + "\n").encode("utf-8")
        written = os.write(self._fd, line)  # one write of the whole line: readers never see half of it
        while written < len(line):  # only after an interruption or a full disk; the rest follows at once
            written += os.write(self._fd, line[written:])
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self._tb.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        """Closes the files (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
