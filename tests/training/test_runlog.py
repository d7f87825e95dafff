"""OUT/log.jsonl and the TensorBoard scalars of a run."""

from __future__ import annotations

import math
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
