"""Training commands under ``torchrun``: two CPU ranks (gloo, loopback) on a global batch give the
losses of one process on the same batch, keep identical parameters, and resume in one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("rank_worker.py")
#: A small QRNN LM without dropout (the ranks draw other dropout masks than one process would);
#: window 2 carries input history in the hidden state, variable BPTT draws the window lengths.
LM = ("--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--window", "2", "--bptt", "10",
      "--variable-bptt", "--batch-size", "8", "--eval-batch-size", "5", "--lr", "0.01", "--dropout", "0",
      "--dropouth", "0", "--dropouti", "0", "--dropoute", "0", "--threads", "1", "--device", "cpu", "--quiet",
      "--precision", "32")  # float32: bf16 rounds differently when the batch is split over ranks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def torchrun(child_env):
    """``torchrun(nproc, weights, *argv)``: ``torchrun --nproc_per_node NPROC rank_worker.py ARGV`` on
    loopback, each rank's final weights saved in the folder ``weights``."""

    def run(nproc: int, weights: Path, *argv) -> subprocess.CompletedProcess:
        weights.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(WORKER), *map(str, argv)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env=child_env(QUASIRNN_TEST_WEIGHTS=str(weights)))

    return run


def records(out: Path, split: str = "train") -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["split"] == split]


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def assert_same_weights(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_two_ranks_train_like_one_process_on_the_same_global_batch(ptb_slice, tmp_path, cli, torchrun):
    steps = 12
    code, _, err = cli("lm", "train", "--data", ptb_slice, *LM, "--max-steps", steps, "--out", tmp_path / "one")
    assert code == 0, err
    proc = torchrun(2, tmp_path / "weights", "lm", "train", "--data", ptb_slice, *LM, "--max-steps", steps,
                    "--out", tmp_path / "two")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("done (max_steps) after 12 steps") == 1  # rank 0 alone prints and writes

    one, two = records(tmp_path / "one"), records(tmp_path / "two")
    assert [r["step"] for r in two] == list(range(1, steps + 1))
    assert [r["tokens"] for r in two] == [r["tokens"] for r in one]  # the same windows, all 8 columns
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    m1, m2 = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert m2["world_size"] == 2 and m1["world_size"] == 1
    assert m2["val_loss"] == pytest.approx(m1["val_loss"], rel=1e-5)  # validation split over the ranks
    assert m2["test_loss"] == pytest.approx(m1["test_loss"], rel=1e-5)
    rank0 = torch.load(tmp_path / "weights" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "weights" / "rank1.pt", weights_only=True)
    assert_same_weights(rank0, rank1, exact=True)
    saved = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert_same_weights(saved["model"], rank0, exact=True)
    assert_same_weights(rank0, torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["model"], exact=False)


def test_a_distributed_checkpoint_resumes_in_one_process(ptb_slice, tmp_path, cli, torchrun):
    """2 ranks for 7 steps (mid-epoch: the hidden state of both ranks' columns is saved), then
    one process to 12 steps == one process for 12 steps."""
    code, _, err = cli("lm", "train", "--data", ptb_slice, *LM, "--max-steps", 12, "--out", tmp_path / "one")
    assert code == 0, err
    proc = torchrun(2, tmp_path / "weights", "lm", "train", "--data", ptb_slice, *LM, "--max-steps", 7,
                    "--out", tmp_path / "split")
    assert proc.returncode == 0, proc.stderr
    saved = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert saved["progress"]["position"] > 0 and len(saved["rng_ranks"]) == 2
    assert saved["hidden"][0][0].shape[-2] == 8  # c of layer 0: (1, B, H) with the 8 columns of both ranks
    code, _, err = cli("lm", "train", "--resume", tmp_path / "split", "--max-steps", 12, "--quiet")
    assert code == 0, err
    one, resumed = records(tmp_path / "one"), records(tmp_path / "split")
    assert [r["step"] for r in resumed] == list(range(1, 13))
    for a, b in zip(one, resumed):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    assert metrics(tmp_path / "split")["val_loss"] == pytest.approx(metrics(tmp_path / "one")["val_loss"], rel=1e-5)


def test_classifier_on_two_ranks(imdb_slice, tmp_path, cli, torchrun):
    """105 training reviews in global batches of 13 (split 7/6 between the ranks) and a last batch of one
    review (rank 1 runs a weight-0 stand-in): the losses, counts and weights of one process."""
    opts = ("classify", "train", "--data", imdb_slice, "--limit", "60", "--val-size", "15", "--emb-size", "16",
            "--hidden-size", "16", "--num-layers", "2", "--max-vocab", "2000", "--max-len", "60", "--batch-size", "13",
            "--dropout", "0", "--dropouth", "0", "--dropouti", "0", "--dropoute", "0", "--threads", "1", "--quiet",
            "--device", "cpu", "--epochs", "2")
    code, _, err = cli(*opts, "--out", tmp_path / "one")
    assert code == 0, err
    proc = torchrun(2, tmp_path / "weights", *opts, "--out", tmp_path / "two")
    assert proc.returncode == 0, proc.stderr
    one, two = records(tmp_path / "one"), records(tmp_path / "two")
    assert len(one) == len(two) == 2 * 9  # 8 batches of 13 reviews and one of 1 an epoch
    for a, b in zip(one, two):
        assert (b["loss"], b["accuracy"], b["tokens"]) == pytest.approx((a["loss"], a["accuracy"], a["tokens"]), rel=1e-5)
    m1, m2 = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert m2["train_examples"] == m1["train_examples"] == 2 * 105
    assert m2["last_val_accuracy"] == pytest.approx(m1["last_val_accuracy"])
    assert m2["test_accuracy"] == pytest.approx(m1["test_accuracy"])
    rank0 = torch.load(tmp_path / "weights" / "rank0.pt", weights_only=True)
    assert_same_weights(rank0, torch.load(tmp_path / "weights" / "rank1.pt", weights_only=True), exact=True)


def test_translator_on_two_ranks(multi30k_slice, tmp_path, cli, torchrun):
    """53 sentence pairs in global batches of 13 (7/6 pairs per rank) and a last batch of one pair
    (rank 1 runs a weight-0 stand-in), two epochs; validation and test batches alternate between
    the ranks: the losses, counts, BLEU and weights of one process."""
    opts = ("translate", "train", "--data", multi30k_slice, "--limit", "53", "--val-limit", "20", "--emb-size", "16",
            "--hidden-size", "16", "--batch-size", "13", "--eval-batch-size", "8", "--lr", "0.01", "--dropout", "0",
            "--final-beam", "2", "--threads", "1", "--quiet", "--device", "cpu", "--epochs", "2")
    code, _, err = cli(*opts, "--out", tmp_path / "one")
    assert code == 0, err
    proc = torchrun(2, tmp_path / "weights", *opts, "--out", tmp_path / "two")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("done (epochs) after 10 steps") == 1
    one, two = records(tmp_path / "one"), records(tmp_path / "two")
    assert [r["step"] for r in two] == list(range(1, 11))  # 4 batches of 13 pairs and one of 1 an epoch
    for a, b in zip(one, two):
        assert b["tokens"] == a["tokens"] and b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    assert [r["bleu"] for r in records(tmp_path / "two", "valid")] == \
        pytest.approx([r["bleu"] for r in records(tmp_path / "one", "valid")])
    m1, m2 = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert m2["world_size"] == 2 and m2["train_pairs"] == m1["train_pairs"] == 2 * 53
    assert m2["train_tokens"] == m1["train_tokens"]
    for key in ("val_bleu", "test_bleu", "test_bleu_greedy", "best_val_bleu_greedy"):
        assert m2[key] == pytest.approx(m1[key]), key
    assert m2["history"][-1]["lr"] == m1["history"][-1]["lr"]  # the same plateau decisions
    rank0 = torch.load(tmp_path / "weights" / "rank0.pt", weights_only=True)
    assert_same_weights(rank0, torch.load(tmp_path / "weights" / "rank1.pt", weights_only=True), exact=True)
    single = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["model"]
    for key in single:  # Adam's normalised steps (lr 0.01) magnify float32 rounding of near-zero gradients
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-3, atol=1e-4)


def test_a_lock_rank_0_cannot_take_ends_every_rank(synthetic, tmp_path, torchrun):
    """Only rank 0 takes OUT/run.lock; when it cannot, the other rank learns it and ends too (no rank
    waits for the others), and nothing in OUT is touched."""
    out = tmp_path / "locked"
    out.mkdir()
    (out / "run.lock").write_text("not a lock anyone wrote\n")  # names no holder: refused, never taken over
    started = time.monotonic()
    proc = torchrun(2, tmp_path / "weights", "lm", "train", "--data", synthetic, *LM, "--max-steps", 3, "--out", out)
    assert proc.returncode != 0 and time.monotonic() - started < 120
    assert f"quasirnn: error: {out} is locked by {out / 'run.lock'}, which names no holder" in proc.stderr
    assert f"quasirnn: error: rank 0 could not start the run: {out} is locked by" in proc.stderr
    assert "quasirnn/training/" not in proc.stderr, proc.stderr  # no traceback of ours (torchrun prints its own)
    assert [p.name for p in out.iterdir()] == ["run.lock"]
    assert (out / "run.lock").read_text() == "not a lock anyone wrote\n"
