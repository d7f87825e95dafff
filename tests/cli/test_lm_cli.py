"""`quasirnn lm train` / `quasirnn lm eval` end to end: real PTB training, metrics, resume, eval."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from quasirnn.experiments.language_model import LMConfig
from quasirnn.data import load_corpus

CELLS = ["lstm", "qrnn", "sru"]


def read_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


# ----------------------------------------------------------------------------- real Penn Treebank

REAL = ("--emb-size", "64", "--hidden-size", "128", "--num-layers", "2", "--bptt", "35", "--batch-size", "20",
        "--lr", "0.01", "--dropout", "0.1", "--dropouth", "0.1", "--dropouti", "0.1", "--dropoute", "0",
        "--eval-batch-size", "20", "--softmax", "full", "--quiet")
REAL_STEPS = 300


@pytest.fixture(scope="module")
def ptb_run(real_ptb, tmp_path_factory, cli):
    """A tiny QRNN LM trained for a few hundred steps on the real PTB, and the same model untrained."""
    root = tmp_path_factory.mktemp("ptb_run")
    # --epochs 0 is refused: one step with a learning rate of 1e-9 leaves the model as it was initialised
    untrained = cli("lm", "train", "--data", real_ptb, "--out", root / "untrained", *REAL, "--max-steps", "1",
                    "--lr", "1e-9")
    trained = cli("lm", "train", "--data", real_ptb, "--out", root / "trained", *REAL, "--max-steps", REAL_STEPS)
    return {"untrained": (root / "untrained", untrained), "trained": (root / "trained", trained), "data": real_ptb}


@pytest.mark.slow
def test_training_on_ptb_lowers_perplexity_far_below_the_start(ptb_run):
    out0, (code0, _, err0) = ptb_run["untrained"]
    out, (code, stdout, err) = ptb_run["trained"]
    assert code0 == 0 and code == 0, err0 + err
    start, end = read_metrics(out0), read_metrics(out)
    assert start["steps"] == 1 and start["stop_reason"] == "max_steps"
    assert start["val_ppl"] > 5000  # an untrained model is close to uniform over V = 10,000 words
    assert end["val_ppl"] < 1000 and end["val_ppl"] < start["val_ppl"] / 10
    # it uses context: better than the unigram model fitted to the training counts (add-one smoothing)
    corpus = load_corpus(ptb_run["data"])
    counts = Counter(corpus.train.tolist())
    total = corpus.train.numel() + len(corpus.vocab)
    unigram_nll = -sum(math.log((counts[i] + 1) / total) for i in corpus.valid.tolist()) / corpus.valid.numel()
    assert end["val_ppl"] < math.exp(unigram_nll)
    assert f"valid ppl {end['val_ppl']:.2f}" in stdout and f"test ppl {end['test_ppl']:.2f}" in stdout


@pytest.mark.slow
def test_metrics_json_contents(ptb_run):
    out, _ = ptb_run["trained"]
    m = read_metrics(out)
    assert m["cell"] == "qrnn" and m["kind"] == "language_model"
    assert m["steps"] == REAL_STEPS and m["stop_reason"] == "max_steps" and m["finished"] is True
    assert m["train_tokens"] == REAL_STEPS * 35 * 20
    assert m["epochs"] == pytest.approx(REAL_STEPS * 35 / (929_589 // 20 - 1), abs=1e-3)
    assert m["epochs_completed"] == 0
    assert m["train_tokens_per_s"] == pytest.approx(m["train_tokens"] / m["train_time_s"])
    assert 0 < m["train_time_s"] < m["wall_time_s"]
    assert math.isfinite(m["test_ppl"]) and m["test_ppl"] == pytest.approx(math.exp(m["test_loss"]))
    # 64·10,000 tied embedding/decoder + decoder bias + the two QRNN layers (window 2, then 1)
    qrnn = (2 * 64 + 1) * 3 * 128 + (128 + 1) * 3 * 64
    assert m["params"] == 64 * 10_000 + 10_000 + qrnn
    config = m["config"]
    assert set(config) == set(LMConfig.resume_kinds())
    assert (config["emb_size"], config["hidden_size"], config["num_layers"], config["bptt"]) == (64, 128, 2, 35)
    assert config["lr"] == 0.01 and config["cell"] == "qrnn" and config["max_steps"] == REAL_STEPS
    assert Path(config["data"]) == Path(ptb_run["data"]).resolve()
    # no temp files left (TensorBoard's folder only when tensorboard is installed)
    assert sorted(p.name for p in out.iterdir() if p.name != "tensorboard") == ["checkpoint.pt", "log.jsonl", "metrics.json"]


@pytest.mark.slow
def test_checkpoint_is_safe_to_load(ptb_run):
    out, _ = ptb_run["trained"]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["kind"] == "language_model" and ckpt["format"] == "quasirnn-checkpoint"
    assert len(ckpt["vocab"]) == 10_000 and ckpt["vocab"][:3] == ["aer", "banknote", "berlitz"]
    assert ckpt["progress"]["step"] == REAL_STEPS
    assert ckpt["model"]["encoder.weight"].shape == (10_000, 64)
    assert ckpt["optimizer"]["state"] and isinstance(ckpt["rng"]["torch"], torch.Tensor)


@pytest.mark.slow
@pytest.mark.parametrize("split", ["test", "valid"])
def test_eval_reproduces_the_reported_perplexity(ptb_run, split, cli):
    out, _ = ptb_run["trained"]
    reported = read_metrics(out)[{"test": "test_ppl", "valid": "val_ppl"}[split]]
    # no --data: the run's data directory recorded in the checkpoint is used
    code, stdout, err = cli("lm", "eval", "--checkpoint", out / "checkpoint.pt", "--split", split, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["split"] == split
    assert result["ppl"] == pytest.approx(reported, rel=1e-6)
    # the human-readable form prints the same number; a run directory works as --checkpoint too
    code, stdout, _ = cli("lm", "eval", "--checkpoint", out, "--split", split, "--data", ptb_run["data"])
    assert code == 0
    assert re.fullmatch(rf"{split} perplexity {reported:.2f} \(loss [0-9.]+ nats/token over [0-9,]+ tokens\)\n", stdout)


# ----------------------------------------------------------------------------- synthetic corpus


@pytest.mark.parametrize("cell", CELLS)
def test_train_and_eval_on_a_small_corpus(synthetic, tmp_path, cell, cli, tiny):
    out = tmp_path / "run"
    code, stdout, err = cli("lm", "train", "--data", synthetic, "--out", out, "--cell", cell, *tiny, "--epochs", "3")
    assert code == 0, err
    m = read_metrics(out)
    assert m["epochs_completed"] == 3 and m["stop_reason"] == "epochs" and m["cell"] == cell
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    assert m["history"][-1]["val_ppl"] == pytest.approx(m["val_ppl"])
    assert m["history"][-1]["val_ppl"] < m["history"][0]["val_ppl"]  # it learns the ring of words
    assert stdout.count("valid ppl") == 4  # one line per epoch and the final summary
    code, stdout, _ = cli("lm", "eval", "--checkpoint", out, "--json")
    assert json.loads(stdout)["ppl"] == pytest.approx(m["test_ppl"], rel=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_resume_continues_exactly(synthetic, tmp_path, cell, cli, tiny):
    """20 steps + resume to 70 steps == 70 steps at once (crossing an epoch end at ~44), dropout and variable bptt on."""
    opts = ("--data", synthetic, "--cell", cell, *tiny, "--variable-bptt", "--dropout", "0.2", "--dropouth", "0.2",
            "--dropoute", "0.1", "--epochs", "5")
    if cell == "qrnn":
        opts += ("--zoneout", "0.1")
    code, _, err = cli("lm", "train", *opts, "--out", tmp_path / "straight", "--max-steps", "70")
    assert code == 0, err
    code, _, err = cli("lm", "train", *opts, "--out", tmp_path / "split", "--max-steps", "20")
    assert code == 0, err
    first = read_metrics(tmp_path / "split")
    assert first["steps"] == 20 and first["epochs_completed"] == 0
    code, stdout, err = cli("lm", "train", "--resume", tmp_path / "split", "--max-steps", "70", "--quiet")
    assert code == 0, err
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "split")
    assert resumed["steps"] == straight["steps"] == 70
    untimed = lambda history: [{k: v for k, v in h.items() if k != "train_time_s"} for h in history]  # noqa: E731
    assert resumed["epochs_completed"] >= 1
    assert untimed(resumed["history"]) == untimed(straight["history"])  # same validation results per epoch
    assert resumed["val_loss"] == pytest.approx(straight["val_loss"], rel=1e-6)
    assert resumed["test_loss"] == pytest.approx(straight["test_loss"], rel=1e-6)
    assert resumed["train_tokens"] == straight["train_tokens"]
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_resume_with_more_epochs_and_default_out(synthetic, tmp_path, cli, tiny):
    code, _, err = cli("lm", "train", "--data", synthetic, "--cell", "lstm", *tiny, "--epochs", "1", "--out", "r")
    assert code == 0, err
    code, stdout, err = cli("lm", "train", "--resume", "r", "--epochs", "2", "--quiet")
    assert code == 0, err
    m = read_metrics(tmp_path / "r")
    assert m["epochs_completed"] == 2 and len(m["history"]) == 2 and m["config"]["epochs"] == 2


def test_time_budget_stops_gracefully(synthetic, tmp_path, cli, tiny):
    code, stdout, err = cli("lm", "train", "--data", synthetic, "--cell", "lstm", *tiny, "--out", "b",
                            "--time-budget", "0.0002")  # 12 ms of training
    assert code == 0, err
    m = read_metrics(tmp_path / "b")
    assert m["stop_reason"] == "time_budget" and m["steps"] >= 1
    assert m["epochs_completed"] == 0 and m["train_time_s"] >= 0.012
    assert m["val_ppl"] is not None and m["test_ppl"] is not None and m["finished"]
    assert "done (time_budget)" in stdout


def test_default_output_directory(synthetic, tmp_path, cli, tiny):
    code, stdout, err = cli("lm", "train", "--data", synthetic, "--cell", "lstm", *tiny, "--max-steps", "2")
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("lm-lstm-") and (run_dir / "checkpoint.pt").is_file()


def test_progress_log_lines_when_not_quiet(synthetic, tmp_path, cli, tiny):
    args = [a for a in tiny if a != "--quiet"]
    code, stdout, err = cli("lm", "train", "--data", synthetic, "--cell", "lstm", *args, "--max-steps", "6",
                            "--log-interval", "3", "--no-progress", "--out", "p")
    assert code == 0, err
    lines = [line for line in stdout.splitlines() if line.startswith("epoch 1 step")]
    assert [line.split()[3] for line in lines] == ["3", "6"]
    assert all(re.search(r"loss [0-9.]+ \| ppl [0-9.]+ \| [0-9,]+ tok/s", line) for line in lines)


def test_lm_train_cli_precision(cli, synthetic, tiny, tmp_path):
    code, _, err = cli("lm", "train", "--data", synthetic, "--out", tmp_path / "fp16", *tiny,
                       "--max-steps", "2", "--device", "cpu", "--precision", "fp16")
    assert code != 0 and "--precision fp16 needs a CUDA device" in err and "Traceback" not in err
    code, _, err = cli("lm", "train", "--data", synthetic, "--out", tmp_path / "bf16", *tiny,
                       "--max-steps", "3", "--device", "cpu", "--precision", "bf16")
    assert code == 0, err
    metrics = json.loads((tmp_path / "bf16" / "metrics.json").read_text())
    assert metrics["config"]["precision"] == "bf16" and metrics["steps"] == 3
    assert metrics["val_ppl"] is not None and metrics["test_ppl"] is not None



def test_lm_train_default_precision_is_bf16_for_the_qrnn_where_the_cpu_has_it(cli, synthetic, tiny, tmp_path):
    from quasirnn.training.precision import cpu_has_bf16

    code, _, err = cli("lm", "train", "--data", synthetic, "--out", tmp_path / "auto", *tiny,
                       "--max-steps", "2", "--device", "cpu")
    assert code == 0, err
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert metrics["config"]["precision"] == ("bf16" if cpu_has_bf16() else "32")
    for name, options in {"f32": ("--precision", "32"), "lstm": ("--cell", "lstm")}.items():
        code, _, err = cli("lm", "train", "--data", synthetic, "--out", tmp_path / name, *tiny,
                           "--max-steps", "2", "--device", "cpu", *options)
        assert code == 0, err
        assert json.loads((tmp_path / name / "metrics.json").read_text())["config"]["precision"] == "32"
    # a resumed run keeps the precision it was started with
    code, _, err = cli("lm", "train", "--resume", tmp_path / "f32", "--max-steps", "3", "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "f32" / "metrics.json").read_text())
    assert metrics["config"]["precision"] == "32" and metrics["steps"] == 3

# ----------------------------------------------------------------------------- adaptive softmax


def test_adaptive_softmax_resumes_mid_epoch_exactly_and_eval_reproduces(synthetic, tmp_path, cli, tiny):
    opts = ("--data", synthetic, "--cell", "qrnn", *tiny, "--softmax", "adaptive", "--cutoffs", "4,12",
            "--variable-bptt", "--dropout", "0.2", "--epochs", "3")
    code, stdout, err = cli("lm", "train", *opts, "--out", tmp_path / "straight", "--max-steps", "60")
    assert code == 0, err
    assert "adaptive [4, 12] softmax" in stdout
    code, _, err = cli("lm", "train", *opts, "--out", tmp_path / "split", "--max-steps", "25")
    assert code == 0, err
    assert read_metrics(tmp_path / "split")["epochs_completed"] == 0  # stopped mid-epoch
    # the softmax is part of the checkpoint's fixed configuration
    code, _, err = cli("lm", "train", "--resume", tmp_path / "split", "--softmax", "full", "--quiet")
    assert code != 0 and "--softmax full (checkpoint: adaptive)" in err
    code, _, err = cli("lm", "train", "--resume", tmp_path / "split", "--max-steps", "60", "--quiet")
    assert code == 0, err
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "split")
    assert resumed["config"]["softmax"] == "adaptive" and resumed["config"]["cutoffs"] == [4, 12]
    assert resumed["steps"] == straight["steps"] == 60 and resumed["epochs_completed"] >= 1
    assert resumed["val_loss"] == pytest.approx(straight["val_loss"], rel=1e-6)
    assert resumed["test_loss"] == pytest.approx(straight["test_loss"], rel=1e-6)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    assert "softmax.cluster_weight" in a and "decoder.bias" not in a
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    code, stdout, err = cli("lm", "eval", "--checkpoint", tmp_path / "split", "--json")
    assert code == 0, err
    assert json.loads(stdout)["ppl"] == pytest.approx(resumed["test_ppl"], rel=1e-6)


def test_softmax_auto_is_full_on_a_small_vocabulary_and_old_checkpoints_load(synthetic, tmp_path, cli, tiny):
    code, _, err = cli("lm", "train", "--data", synthetic, "--cell", "lstm", *tiny, "--max-steps", "3", "--out", "a")
    assert code == 0, err
    m = read_metrics(tmp_path / "a")
    assert m["config"]["softmax"] == "full" and m["config"]["cutoffs"] is None
    # a checkpoint written before the option existed: no softmax/cutoffs keys
    path = tmp_path / "a" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["config"]["softmax"], ckpt["config"]["cutoffs"]
    torch.save(ckpt, path)
    code, stdout, err = cli("lm", "eval", "--checkpoint", path, "--json")
    assert code == 0, err
    assert json.loads(stdout)["ppl"] == pytest.approx(m["test_ppl"], rel=1e-6)
    code, _, err = cli("lm", "train", "--resume", tmp_path / "a", "--max-steps", "5", "--quiet")
    assert code == 0, err
    m = read_metrics(tmp_path / "a")
    assert m["steps"] == 5 and m["config"]["softmax"] == "full"


def test_cutoffs_alone_choose_the_adaptive_softmax_and_bad_cutoffs_are_refused(synthetic, tmp_path, cli, tiny):
    code, _, err = cli("lm", "train", "--data", synthetic, "--cell", "lstm", *tiny, "--max-steps", "2",
                       "--cutoffs", "10", "--no-tie-weights", "--out", "c")
    assert code == 0, err
    assert read_metrics(tmp_path / "c")["config"]["softmax"] == "adaptive"
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--max-steps", "2", "--cutoffs", "10,5", "--out", "d")
    assert code != 0 and "cutoffs must be increasing integers" in err
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--max-steps", "2", "--cutoffs", "5000", "--out", "e")
    assert code != 0 and "cutoffs must be strictly increasing integers in [1, " in err and "Traceback" not in err
