"""OUT/log.jsonl and the TensorBoard scalars of a run."""

from __future__ import annotations

import math
import os
import sys
import types

from quasirnn.training.runlog import RunLog, read_log


def test_records_resume_and_tensorboard(tmp_path, monkeypatch):
    scalars = []

    class FakeWriter:  # stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is optional)
        def __init__(self, logdir, purge_step=None):
            scalars.append(("open", logdir, purge_step))

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def close(self):
            scalars.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    log = RunLog(tmp_path)
    for step in (1, 2, 3):
        log.write("train", step, {"epoch": step / 4, "loss": float(step), "ppl": math.inf})
    log.close()
    records = read_log(tmp_path / "log.jsonl")
    assert [(r["split"], r["step"], r["loss"], r["ppl"]) for r in records] == [("train", s, float(s), None) for s in (1, 2, 3)]
    assert scalars[0] == ("open", str(tmp_path / "tensorboard"), None)
    assert ("train/loss", 2.0, 2) in scalars and not any(s[0] == "train/epoch" for s in scalars)

    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"split": "train", "st')  # a line cut by a crash
    resumed = RunLog(tmp_path, resume_step=2)  # the checkpoint was at step 2: step 3 is trained again
    resumed.write("train", 3, {"loss": 0.5})
    resumed.close()
    assert [(r["step"], r["loss"]) for r in read_log(tmp_path / "log.jsonl")] == [(1, 1.0), (2, 2.0), (3, 0.5)]
    assert ("open", str(tmp_path / "tensorboard"), 3) in scalars  # TensorBoard drops its events after step 2


def test_other_ranks_write_nothing(tmp_path):
    log = RunLog(tmp_path, enabled=False)
    log.write("train", 1, {"loss": 1.0})
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_line_is_skipped_and_reported(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    path.write_text('{"split": "train", "step": 1}\n{"split": "train", "st{"split": "train", "step": 2}\n'
                    '[1, 2]\n\n{"split": "train", "step": 3}\n{"split": "tra')
    assert [r["step"] for r in read_log(path)] == [1, 3]
    assert capsys.readouterr().err == f"quasirnn: warning: {path}: skipped damaged 3 lines (2, 3, 6) (not a JSON record)\n"
    lines = []
    read_log(path, warn=lines.append)
    assert lines == [f"{path}: skipped damaged 3 lines (2, 3, 6) (not a JSON record)"]
    path.write_text('{"split": "train", "step": 1}\n')
    read_log(path)
    assert capsys.readouterr().err == ""


def test_each_record_is_one_appended_write_of_a_whole_line(tmp_path, monkeypatch):
    log = RunLog(tmp_path, tensorboard=False)
    writes = []
    real_write = os.write

    def spy(fd, data):
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    log.write("train", 1, {"loss": 1.0, "note": "é" * 3000})
    with open(tmp_path / "log.jsonl", "a") as other:  # bytes added meanwhile are not overwritten (O_APPEND)
        other.write('{"split": "other"}\n')
    log.write("train", 2, {"loss": 0.5, "note": "é" * 3000})
    monkeypatch.undo()
    log.close()
    assert len(writes) == 2 and all(w.endswith(b"\n") and w.count(b"\n") == 1 for w in writes)
    assert (tmp_path / "log.jsonl").read_bytes() == writes[0] + b'{"split": "other"}\n' + writes[1]
