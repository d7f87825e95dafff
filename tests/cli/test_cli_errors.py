"""User errors give one line, `quasirnn: error: <message>`, exit status 2, and no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quasirnn.checkpoint_file import save_checkpoint


SRC = Path(__file__).resolve().parents[2] / "src"


def assert_one_line_error(result, *fragments):
    code, stdout, stderr = result
    assert code == 2, (code, stdout, stderr)
    assert stderr.startswith("quasirnn: error: ") and stderr.endswith("\n")
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic, cli, tiny):
    out = tmp_path_factory.mktemp("trained")
    code, _, err = cli("lm", "train", "--data", synthetic, "--cell", "lstm", *tiny, "--max-steps", "2", "--out", out)
    assert code == 0, err
    return out


def test_missing_data_directory(tmp_path, cli):
    result = cli("lm", "train", "--data", tmp_path / "nowhere", "--cell", "lstm")
    assert_one_line_error(result, f"data directory {tmp_path / 'nowhere'} does not exist", "ptb.train.txt")


def test_missing_split(tmp_path, synthetic, cli):
    data = tmp_path / "d"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.txt").write_text((synthetic / f"ptb.{split}.txt").read_text())
    assert_one_line_error(cli("lm", "train", "--data", data, "--cell", "lstm"),
                          f"no valid split in {data}", "ptb.valid.txt, valid.txt, wiki.valid.tokens")


def test_empty_file(tmp_path, synthetic, cli):
    data = tmp_path / "d"
    data.mkdir()
    for split in ("train", "valid"):
        (data / f"ptb.{split}.txt").write_text((synthetic / f"ptb.{split}.txt").read_text())
    (data / "ptb.test.txt").write_text("")
    assert_one_line_error(cli("lm", "train", "--data", data, "--cell", "lstm"), f"{data / 'ptb.test.txt'} is empty")


def test_eval_missing_checkpoint(tmp_path, cli):
    assert_one_line_error(cli("lm", "eval", "--checkpoint", tmp_path / "none.pt"), "no checkpoint file at")
    # a directory without a checkpoint in it
    assert_one_line_error(cli("lm", "eval", "--checkpoint", tmp_path), f"no checkpoint file at {tmp_path / 'checkpoint.pt'}")


def test_checkpoint_of_another_kind(tmp_path, cli):
    path = save_checkpoint(tmp_path / "c.pt", "classifier", {"num_classes": 2}, model={})
    assert_one_line_error(cli("lm", "eval", "--checkpoint", path), "holds a 'classifier' checkpoint")
    assert_one_line_error(cli("lm", "train", "--resume", path), "holds a 'classifier' checkpoint")


def test_corrupted_checkpoint(tmp_path, trained, cli):
    data = (trained / "checkpoint.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 3])
    assert_one_line_error(cli("lm", "eval", "--checkpoint", bad), str(bad), "corrupted")
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    assert_one_line_error(cli("lm", "eval", "--checkpoint", text), "not a readable quasirnn checkpoint")
    for content in ("# notes\n\nsome text\n", ""):  # torch.load: 'Please file an issue …', EOFError
        text.write_text(content)
        for command in (("eval", "--checkpoint"), ("train", "--resume")):
            code, stdout, err = result = cli("lm", *command, text)
            assert_one_line_error(result, f"{text} is not a readable quasirnn checkpoint: ",
                                  "expected the checkpoint.pt of a quasirnn training run")
            assert "file an issue" not in err and "weights_only" not in err
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(3)}, plain)
    assert_one_line_error(cli("lm", "eval", "--checkpoint", plain), "not a quasirnn checkpoint")


def test_checkpoint_whose_weights_do_not_fit_its_config(tmp_path, trained, cli):
    ckpt = torch.load(trained / "checkpoint.pt", weights_only=True)
    config = {**ckpt["config"], "hidden_size": ckpt["config"]["hidden_size"] + 1}
    payload = {k: v for k, v in ckpt.items() if k not in ("format", "version", "kind", "config")}
    path = save_checkpoint(tmp_path / "c.pt", "language_model", config, **payload)
    assert_one_line_error(cli("lm", "eval", "--checkpoint", path), "weights do not match")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu(synthetic, trained, cli):
    assert_one_line_error(cli("lm", "train", "--data", synthetic, "--cell", "lstm", "--device", "cuda"),
                          "--device cuda: CUDA is not available")
    assert_one_line_error(cli("lm", "eval", "--checkpoint", trained, "--device", "cuda:1"), "CUDA is not available")


def test_unknown_device(synthetic, cli):
    assert_one_line_error(cli("lm", "train", "--data", synthetic, "--cell", "lstm", "--device", "tpu9"),
                          "--device tpu9")


def test_resume_refuses_a_different_configuration(trained, cli):
    assert_one_line_error(cli("lm", "train", "--resume", trained, "--hidden-size", "99", "--lr", "1"),
                          "--hidden-size 99 (checkpoint: 24)", "--lr 1.0 (checkpoint: 0.01)")


def test_existing_output_needs_resume_or_overwrite(synthetic, trained, cli, tiny):
    assert_one_line_error(cli("lm", "train", "--data", synthetic, "--cell", "lstm", *tiny, "--out", trained),
                          "holds an earlier run (checkpoint.pt, metrics.json, log.jsonl)", f"--resume {trained}",
                          "--overwrite")


def test_zoneout_with_lstm(synthetic, cli):
    assert_one_line_error(cli("lm", "train", "--data", synthetic, "--cell", "lstm", "--zoneout", "0.1"),
                          "--zoneout applies to the qrnn cell only")


@pytest.mark.parametrize("cell", ["lstm", "sru"])
def test_qrnn_options_with_other_cells(synthetic, cli, cell):
    assert_one_line_error(cli("lm", "train", "--data", synthetic, "--cell", cell, "--zoneout", "0.1"),
                          "--zoneout applies to the qrnn cell only", f"--cell {cell}")
    assert_one_line_error(cli("lm", "train", "--data", synthetic, "--cell", cell, "--window", "2"),
                          "--window is the qrnn convolution width", f"--cell {cell} reads one step at a time")


def test_eval_with_data_of_another_vocabulary(tmp_path, trained, cli):
    data = tmp_path / "d"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("completely new words\n" * 10)
    # the checkpoint's vocabulary has <unk>, so unseen words are counted as <unk>: this works
    code, stdout, err = cli("lm", "eval", "--checkpoint", trained, "--data", data)
    assert code == 0, err
    assert_one_line_error(cli("lm", "train", "--resume", trained, "--data", data), "vocabulary")


def test_argparse_usage_errors_exit_2(cli):
    code, _, err = cli("lm", "train", "--cell", "gru")
    assert code == 2 and "invalid choice: 'gru'" in err
    code, _, err = cli("lm", "train", "--dropout", "1.5")
    assert code == 2 and "must be in [0, 1)" in err
    code, _, err = cli("lm")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("quasirnn lm: error: "), err  # no 20 lines of usage


def test_an_unknown_option_is_reported_by_its_sub_command_with_its_usage(cli):
    assert cli("lm", "train", "--lrr", "1") == (2, "", (
        "usage: quasirnn lm train [OPTION ...]\n"
        "quasirnn lm train: error: unrecognized arguments: --lrr 1; did you mean --lr? (see quasirnn lm train --help)\n"))
    assert cli("plot", "--xx", "time", "runs/a") == (2, "", (
        "usage: quasirnn plot [OPTION ...] RUN_DIR [RUN_DIR ...]\n"
        "quasirnn plot: error: unrecognized arguments: --xx; did you mean --x? (see quasirnn plot --help)\n"))
    # a mistyped required option is the unknown one, not a missing one; abbreviations (--bpt) stay valid
    assert cli("lm", "eval", "--chekpoint", "run", "--bpt", "3") == (2, "", (
        "usage: quasirnn lm eval --checkpoint PATH [OPTION ...]\n"
        "quasirnn lm eval: error: unrecognized arguments: --chekpoint; did you mean --checkpoint? "
        "(see quasirnn lm eval --help)\n"))
    code, _, err = cli("classify", "predict", "--checkpoint", "c.pt", "--zzz-top")
    assert code == 2 and err.endswith("quasirnn classify predict: error: unrecognized arguments: --zzz-top "
                                      "(see quasirnn classify predict --help)\n"), err


def test_in_a_real_process_there_is_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "quasirnn.cli.main", "lm", "train", "--data", str(tmp_path / "x")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("quasirnn: error: data directory") and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_split_too_short_for_the_batch(tmp_path, synthetic, trained, cli):
    data = tmp_path / "d"
    data.mkdir()
    for split in ("train", "valid"):
        (data / f"ptb.{split}.txt").write_text((synthetic / f"ptb.{split}.txt").read_text())
    (data / "ptb.test.txt").write_text("w1 w2\n")
    assert_one_line_error(cli("lm", "train", "--data", data, "--cell", "lstm", "--eval-batch-size", "4"),
                          "the test split", "has 3 tokens, too few for batch size 4")
    assert_one_line_error(cli("lm", "eval", "--checkpoint", trained, "--data", data), "has 3 tokens")


# ----------------------------------------------------------------------------- training guard rails


def test_diverging_training_stops_with_the_step_and_keeps_the_last_good_checkpoint(synthetic, tmp_path, cli, tiny):
    out = tmp_path / "diverged"
    code, stdout, err = cli("lm", "train", "--data", synthetic, *tiny, "--out", out, "--optimizer", "sgd",
                            "--lr", "1e30", "--clip", "0", "--checkpoint-every", "1", "--max-steps", "20")
    assert_one_line_error((code, stdout, err), "stopped: the last good checkpoint, of step")
    step = int(re.search(r"(?:loss became \S+ at|weights hold NaN or infinite values after) step (\d+)", err).group(1))
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["progress"]["step"] == step - 1 and f"of step {step - 1}, is kept in {out / 'checkpoint.pt'}" in err
    assert all(bool(torch.isfinite(p).all()) for p in saved["model"].values())
    assert "done" not in stdout


def test_resume_of_a_directory_without_checkpoint(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("lm", "train", "--resume", tmp_path / "empty"),
                          f"--resume {tmp_path / 'empty'}: nothing to resume, {tmp_path / 'empty'} holds no checkpoint.pt")
    assert_one_line_error(cli("classify", "train", "--resume", tmp_path / "nowhere"),
                          f"nothing to resume, {tmp_path / 'nowhere'} does not exist")


def test_unwritable_output_directory(synthetic, tmp_path, cli, tiny):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_one_line_error(cli("lm", "train", "--data", synthetic, *tiny, "--out", blocker / "run"),
                          f"cannot write the run to {blocker / 'run'}", "choose another --out")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_one_line_error(cli("lm", "train", "--data", synthetic, *tiny, "--out", locked),
                              f"cannot write the run to {locked}: Permission denied")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_classify_train_on_cuda_without_gpu(tmp_path, cli):
    assert_one_line_error(cli("classify", "train", "--data", tmp_path, "--device", "cuda", "--out", tmp_path / "o"),
                          "--device cuda: CUDA is not available")
