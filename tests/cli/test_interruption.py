"""A training run survives interruption: SIGKILL mid-epoch costs only the steps since the last
``--checkpoint-every`` checkpoint, SIGTERM and SIGINT save one first, and a resumed run ends
exactly like an uninterrupted one (same seed, CPU, one thread), toward the limits the run was
started with. It has one writer: a second run into its ``--out`` is refused before it touches a
file, and the lock a killed run leaves behind is taken over by the next one.

The child processes stop at a known step through the test pause (``QUASIRNN_TEST_PAUSE_AT_STEP``,
see :mod:`quasirnn.training.interrupts`); the signals come from the test."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

#: A QRNN with dropout, zoneout and variable BPTT, so that resuming needs every RNG state exactly.
#: The synthetic corpus gives 44 batches an epoch: 60 steps cross an epoch end.
OPTS = ("--cell", "qrnn", "--zoneout", "0.1", "--variable-bptt", "--dropout", "0.2", "--dropoute", "0.1",
        "--threads", "1", "--epochs", "3", "--max-steps", "60")


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def untimed(m: dict) -> dict:
    """The results of a run without its timings and its configuration (which names the output folder)."""
    drop = {"wall_time_s", "train_time_s", "train_tokens_per_s", "chars_per_s", "config", "history"}
    history = [{k: v for k, v in h.items() if k != "train_time_s"} for h in m["history"]]
    return {**{k: v for k, v in m.items() if k not in drop}, "history": history}


@pytest.fixture
def paused(child_env, synthetic, tiny):
    """``paused(out, step, *extra, command=None)``: a real ``quasirnn COMMAND --out OUT EXTRA`` process
    (by default ``lm train`` with OPTS), waiting after step ``step``."""
    procs = []

    def start(out: Path, step: int, *extra, command=None) -> subprocess.Popen:
        command = command or ("lm", "train", "--data", synthetic, *tiny, *OPTS)
        cmd = [sys.executable, "-m", "quasirnn.cli.main", *map(str, command), "--out", str(out), *map(str, extra)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=child_env(QUASIRNN_TEST_PAUSE_AT_STEP=str(step)))
        procs.append(proc)
        for line in proc.stdout:  # the header, then the pause
            if line.startswith("paused at step"):
                assert line == f"paused at step {step}\n"
                return proc
        raise AssertionError(f"the run ended before step {step}: {proc.wait()} {proc.stderr.read()}")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def straight(synthetic, tiny, cli, tmp_path):
    """The uninterrupted run (in this process)."""
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, *OPTS, "--out", tmp_path / "straight")
    assert code == 0, err
    return tmp_path / "straight"


def test_sigkill_mid_epoch_then_resume_ends_like_the_uninterrupted_run(paused, straight, tmp_path, cli):
    out = tmp_path / "killed"
    proc = paused(out, 13, "--checkpoint-every", "5")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["progress"]["step"] == 10 and saved["progress"]["epoch"] == 0 and saved["progress"]["position"] > 0
    assert saved["config"]["checkpoint_every"] == 5
    logged = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 14))  # steps 11-13 are lost with the process

    code, stdout, err = cli("lm", "train", "--resume", out, "--max-steps", "60", "--quiet")
    assert code == 0, err
    resumed, reference = metrics(out), metrics(straight)
    assert resumed["val_ppl"] == reference["val_ppl"] and resumed["test_ppl"] == reference["test_ppl"]  # exact
    assert untimed(resumed) == untimed(reference)
    a = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 61))  # each step once
    reference_losses = [json.loads(line)["loss"] for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records] == reference_losses


def test_sigterm_saves_a_checkpoint_and_exits(paused, straight, tmp_path, cli):
    out = tmp_path / "terminated"
    proc = paused(out, 7)  # no --checkpoint-every: nothing saved yet
    assert not (out / "checkpoint.pt").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert f"terminated (SIGTERM) after 7 steps: saved {out}; continue with --resume {out}" in proc.stdout.read()
    m = metrics(out)
    assert m["steps"] == 7 and m["stop_reason"] == "terminated" and m["finished"] is False and m["test_ppl"] is None
    assert torch.load(out / "checkpoint.pt", weights_only=True)["progress"]["position"] > 0

    code, _, err = cli("lm", "train", "--resume", out, "--max-steps", "60", "--quiet")
    assert code == 0, err
    assert untimed(metrics(out)) == untimed(metrics(straight))


def test_sigint_saves_evaluates_and_reports(paused, tmp_path):
    out = tmp_path / "interrupted"
    proc = paused(out, 7)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130  # saved, evaluated and reported; `train && deploy` stops
    stdout = proc.stdout.read()
    assert "interrupted: checkpoint saved; evaluating (Ctrl-C again to abort)" in stdout
    assert "done (interrupted) after 7 steps" in stdout
    m = metrics(out)
    assert m["steps"] == 7 and m["stop_reason"] == "interrupted" and m["finished"] is True
    assert m["val_ppl"] is not None and m["test_ppl"] is not None


#: A QRNN translator with dropout and zoneout: 53 sentence pairs in batches of 8 make 7 steps an
#: epoch, so 16 steps cross two epoch ends, the second one without a better BLEU (a decay: no patience).
TRANSLATE = ("translate", "train", "--limit", "53", "--val-limit", "20", "--emb-size", "16", "--hidden-size", "16",
             "--batch-size", "8", "--eval-batch-size", "10", "--lr", "0.01", "--lr-patience", "0", "--dropout", "0.2",
             "--zoneout", "0.1",
             "--final-beam", "2", "--threads", "1", "--quiet", "--epochs", "3", "--max-steps", "16")


def test_translator_killed_mid_epoch_resumes_like_the_uninterrupted_run(paused, multi30k_slice, tmp_path, cli):
    command = (*TRANSLATE, "--data", multi30k_slice)
    code, _, err = cli(*command, "--out", tmp_path / "straight")
    assert code == 0, err
    out = tmp_path / "killed"
    proc = paused(out, 10, "--checkpoint-every", "4", command=command)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (saved["progress"]["step"], saved["progress"]["epoch"], saved["progress"]["position"]) == (8, 1, 1)
    assert saved["best"]["step"] == 7 and len(saved["progress"]["history"]) == 1

    code, _, err = cli("translate", "train", "--resume", out, "--max-steps", "16", "--quiet")
    assert code == 0, err
    resumed, reference = metrics(out), metrics(tmp_path / "straight")
    assert resumed["val_bleu"] == reference["val_bleu"] and resumed["test_bleu"] == reference["test_bleu"]
    assert untimed(resumed) == untimed(reference)
    assert [h["lr"] for h in resumed["history"]] == [h["lr"] for h in reference["history"]] == [0.01, 0.005]
    a = torch.load(out / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    for part in ("model", "best_model"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in b[part]), part
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 17))  # each step once
    reference_records = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert [(r["split"], r.get("loss"), r.get("bleu")) for r in records] == \
        [(r["split"], r.get("loss"), r.get("bleu")) for r in reference_records]


# ----------------------------------------------------------------------------- budgets kept by --resume


def test_resume_without_a_budget_stops_where_the_run_was_started_to_stop(paused, tmp_path, cli):
    out = tmp_path / "budget"
    proc = paused(out, 4, "--max-steps", "9")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    code, stdout, err = cli("lm", "train", "--resume", out, "--quiet")
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert first.startswith("resuming qrnn language model") and first.endswith(
        "; at step 4 toward --max-steps 9 (from the checkpoint), --epochs 3 (from the checkpoint), --time-budget 20 "
        "minutes of training (from the checkpoint; 0.0 spent)"), first
    m = metrics(out)
    assert m["steps"] == 9 and m["stop_reason"] == "max_steps" and m["config"]["max_steps"] == 9

    code, stdout, err = cli("lm", "train", "--resume", out, "--quiet", "--max-steps", "11")  # a new limit, given
    assert code == 0, err
    assert "; at step 9 toward --max-steps 11 (given), --epochs 3 (from the checkpoint)" in stdout.splitlines()[0]
    assert metrics(out)["steps"] == 11


# ----------------------------------------------------------------------------- one writer per run


def run_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_a_second_writer_is_refused_before_it_touches_the_run(paused, child_env, synthetic, tiny, tmp_path, cli):
    out = tmp_path / "busy"
    first = paused(out, 5, "--checkpoint-every", "5")
    before = run_files(out)
    assert set(before) == {"checkpoint.pt", "metrics.json", "log.jsonl", "run.lock"}
    holder = json.loads(before["run.lock"])
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    expected = (f"quasirnn: error: {out} is being written by another run: pid {first.pid} on host "
                f"{socket.gethostname()} since {holder['since']}; wait for it to end or choose another --out\n")
    new_run = ("lm", "train", "--data", synthetic, *tiny, *OPTS, "--out", out)
    second = subprocess.run([sys.executable, "-m", "quasirnn.cli.main", *map(str, new_run)], capture_output=True,
                            text=True, env=child_env(), timeout=120)
    assert (second.returncode, second.stderr, second.stdout) == (2, expected, "")
    assert run_files(out) == before  # nothing touched: log, checkpoint, metrics, lock
    for argv in ((*new_run, "--overwrite"), ("lm", "train", "--resume", out, "--quiet")):
        assert cli(*argv) == (2, "", expected), argv
        assert run_files(out) == before
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 143
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.jsonl", "metrics.json"]  # lock released


def test_two_runs_started_together_into_one_out_have_one_writer(child_env, synthetic, tiny, tmp_path):
    out = tmp_path / "race"
    cmd = [sys.executable, "-m", "quasirnn.cli.main", "lm", "train", "--data", str(synthetic), *tiny, "--threads", "1",
           "--max-steps", "12", "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    results = sorted((proc.returncode, *output) for proc, output in zip(procs, outputs))
    (ok, ok_out, _), (refused, refused_out, refused_err) = results
    assert (ok, refused, refused_out) == (0, 2, ""), results
    assert "done (max_steps) after 12 steps" in ok_out
    assert refused_err.count("\n") == 1 and refused_err.startswith(f"quasirnn: error: {out} "), refused_err
    assert "is being written by another run: pid " in refused_err or "holds an earlier run" in refused_err
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]  # every line valid
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 13))
    assert torch.load(out / "checkpoint.pt", weights_only=True)["progress"]["step"] == 12
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.jsonl", "metrics.json"]


def test_the_lock_of_a_killed_run_is_taken_over_by_the_resume(paused, tmp_path, cli):
    out = tmp_path / "killed"
    proc = paused(out, 3, "--checkpoint-every", "2", "--max-steps", "5")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    stale = json.loads((out / "run.lock").read_text())
    assert stale["pid"] == proc.pid
    code, stdout, err = cli("lm", "train", "--resume", out, "--quiet")
    assert code == 0, err
    lines = [line for line in err.splitlines() if not line.startswith("quasirnn: compiling the CPU kernels")]
    assert lines == [f"quasirnn: taking over the stale lock of {out}: pid {proc.pid} on host {socket.gethostname()} "
                     f"since {stale['since']}, which no longer runs"]
    assert metrics(out)["steps"] == 5 and not (out / "run.lock").exists()
