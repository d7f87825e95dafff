"""OUT/run.lock: one writer per run directory; stale locks of dead processes are taken over, others are not."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quasirnn.training.distributed import Distributed
from quasirnn.training.outdir import refuse_earlier_run, sole_writer
from quasirnn.training.run_lock import LOCK_NAME, Holder, RunLock, RunLockedError, read_holder


def write_lock(directory: Path, pid: int, host: str = None) -> Holder:
    holder = Holder(pid, host or socket.gethostname(), "2025-01-31T09:12:00+01:00", "t" * 32)
    (directory / LOCK_NAME).write_text(json.dumps(holder.__dict__) + "\n")
    return holder


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_names_its_holder_and_refuses_a_second_writer(tmp_path):
    with RunLock(tmp_path) as lock:
        holder = read_holder(tmp_path / LOCK_NAME)
        assert holder == lock.holder and holder.pid == os.getpid() and holder.host == socket.gethostname()
        with pytest.raises(RunLockedError) as info:
            RunLock(tmp_path).acquire()
        message = str(info.value)
        assert message == (f"{tmp_path} is being written by another run: pid {os.getpid()} on host "
                           f"{socket.gethostname()} since {holder.since}; wait for it to end or choose another --out")
        assert info.value.holder == holder and "\n" not in message
        with pytest.raises(RunLockedError, match="being written by another run"):
            RunLock(tmp_path).check()
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # no temporary file left
    assert list(tmp_path.iterdir()) == []
    RunLock(tmp_path).check()  # free


def test_the_lock_is_released_when_the_body_raises(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunLock(tmp_path):
            raise KeyboardInterrupt
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_one_line(tmp_path):
    stale = write_lock(tmp_path, dead_pid())
    lines = []
    with RunLock(tmp_path, warn=lines.append) as lock:
        assert read_holder(tmp_path / LOCK_NAME) == lock.holder != stale
    assert lines == [f"taking over the stale lock of {tmp_path}: {stale.describe()}, which no longer runs"]
    assert list(tmp_path.iterdir()) == []


def test_a_killed_process_not_yet_collected_holds_no_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie once it exits
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        write_lock(tmp_path, proc.pid)
        lines = []
        with RunLock(tmp_path, warn=lines.append):
            pass
        assert len(lines) == 1
    finally:
        proc.wait()


def test_a_lock_of_another_host_is_not_taken_over(tmp_path):
    other = write_lock(tmp_path, dead_pid(), host="elsewhere.example")
    with pytest.raises(RunLockedError) as info:
        RunLock(tmp_path).acquire()
    assert str(info.value) == (f"{tmp_path} is being written by another run: {other.describe()} (another machine, "
                               f"so its lock is not taken over: if that run is over, delete {tmp_path / LOCK_NAME})")
    assert read_holder(tmp_path / LOCK_NAME) == other


def test_a_lock_file_that_names_no_holder_is_reported(tmp_path):
    (tmp_path / LOCK_NAME).write_text("garbage")
    with pytest.raises(RunLockedError, match=f"names no holder; if no run writes {tmp_path}, delete"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text() == "garbage"


def test_release_leaves_a_lock_that_is_not_its_own(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()
    (tmp_path / LOCK_NAME).unlink()
    other = write_lock(tmp_path, os.getpid())
    lock.release()
    assert read_holder(tmp_path / LOCK_NAME) == other


def test_sigterm_releases_the_lock(tmp_path):
    code = ("import os, signal, sys, time\n"
            "from quasirnn.training.run_lock import RunLock\n"
            "with RunLock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    assert read_holder(tmp_path / LOCK_NAME).pid == proc.pid
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    proc.stdout.close()
    assert list(tmp_path.iterdir()) == []


def test_sole_writer_creates_the_directory_and_a_new_run_is_refused_while_it_is_written(tmp_path):
    out = tmp_path / "runs" / "a"
    with sole_writer(out, Distributed()) as lock:
        assert lock.path == out / LOCK_NAME and lock.path.exists()
        for overwrite in (False, True):
            with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
                refuse_earlier_run(out, overwrite)
        with pytest.raises(RunLockedError):
            with sole_writer(out, Distributed()):
                pass
        assert lock.path.exists()
    assert list(out.iterdir()) == []
