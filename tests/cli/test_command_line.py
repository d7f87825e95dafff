"""The command line keeps what the user had (issue 17, item 7): one-line usage errors for bad counts,
an ``--out`` holding an earlier run is refused, a failed start leaves no ``--out``, ``predict`` reads
stdin with per-line errors, ``python -m quasirnn`` and ``--version``, help texts without markup."""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import random
import shutil
import subprocess
import sys

import pytest

from quasirnn.cli.main import build_parser

TINY_CLASSIFIER = ("--emb-size", "8", "--hidden-size", "8", "--num-layers", "1", "--max-vocab", "50", "--max-len", "30",
                   "--val-size", "4", "--batch-size", "4", "--eval-batch-size", "8", "--max-steps", "2", "--threads", "1",
                   "--quiet")


def assert_usage_error(result, prog, *fragments):
    code, stdout, err = result
    assert code == 2 and stdout == "", (code, stdout, err)
    assert err.startswith(f"{prog}: error: ") and err.count("\n") == 1 and err.endswith(f"(see {prog} --help)\n"), err
    for fragment in fragments:
        assert fragment in err, err


# ---------------------------------------------------------------------------- counts


@pytest.mark.parametrize("command", [("lm", "train"), ("classify", "train"), ("translate", "train")])
@pytest.mark.parametrize("option,value,bound", [
    ("--epochs", "0", ">= 1"), ("--batch-size", "0", ">= 1"), ("--threads", "0", ">= 1"),
    ("--eval-batch-size", "-3", ">= 1"), ("--num-layers", "0", ">= 1"), ("--hidden-size", "-1", ">= 1"),
    ("--log-interval", "0", ">= 1"), ("--max-steps", "-1", ">= 0"), ("--checkpoint-every", "-5", ">= 0"),
    ("--lr-patience", "-1", ">= 0"),
])
def test_zero_or_negative_counts_are_one_line_errors(cli, command, option, value, bound):
    prog = "quasirnn " + " ".join(command)
    assert_usage_error(cli(*command, option, value), prog, f"{option} must be {bound}, got {value}")


def test_command_specific_counts_and_non_integers(cli):
    assert_usage_error(cli("lm", "train", "--bptt", "0"), "quasirnn lm train", "--bptt must be >= 1, got 0")
    assert_usage_error(cli("lm", "eval", "--checkpoint", "x", "--bptt", "-2"), "quasirnn lm eval", "--bptt must be >= 1")
    assert_usage_error(cli("classify", "train", "--max-len", "0"), "quasirnn classify train", "--max-len must be >= 1")
    assert_usage_error(cli("translate", "translate", "--checkpoint", "x", "--beam", "0"),
                       "quasirnn translate translate", "--beam must be >= 1")
    assert_usage_error(cli("lm", "train", "--batch-size", "abc"), "quasirnn lm train",
                       "--batch-size: expected an integer, got 'abc'")
    assert_usage_error(cli("lm", "train", "--cell", "gru"), "quasirnn lm train", "invalid choice: 'gru'")
    assert_usage_error(cli("lm"), "quasirnn lm", "required: COMMAND")


# ---------------------------------------------------------------------------- --out


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory, synthetic, tiny, cli):
    """An lm run of 2 steps: checkpoint.pt, metrics.json and log.jsonl."""
    out = tmp_path_factory.mktemp("earlier") / "run"
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--max-steps", "2", "--out", out)
    assert code == 0, err
    return out


@pytest.mark.parametrize("kept", [("checkpoint.pt", "metrics.json", "log.jsonl"), ("metrics.json", "log.jsonl"),
                                  ("log.jsonl",)])
def test_an_out_with_earlier_results_is_refused_unless_overwrite(earlier_run, synthetic, tiny, cli, tmp_path, kept):
    out = tmp_path / "run"
    out.mkdir()
    for name in kept:
        shutil.copy(earlier_run / name, out / name)
    before = {name: (out / name).read_bytes() for name in kept}
    code, stdout, err = cli("lm", "train", "--data", synthetic, *tiny, "--max-steps", "1", "--out", out)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"quasirnn: error: {out} holds an earlier run ({', '.join(kept)})"), err
    assert ("--resume" in err) == ("checkpoint.pt" in kept) and "--overwrite" in err
    assert {name: (out / name).read_bytes() for name in kept} == before  # nothing touched
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--max-steps", "1", "--out", out, "--overwrite")
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["steps"] == 1


def test_a_failed_start_leaves_no_out_behind(synthetic, tiny, cli, tmp_path):
    out = tmp_path / "runs" / "new"
    code, _, err = cli("lm", "train", "--data", tmp_path / "nowhere", *tiny, "--max-steps", "1", "--out", out)
    assert code == 2 and "nowhere" in err
    code, _, err = cli("classify", "train", "--data", tmp_path / "nowhere", "--out", out, *TINY_CLASSIFIER)
    assert code == 2 and "nowhere" in err
    code, _, err = cli("translate", "train", "--data", tmp_path / "nowhere", "--out", out, "--max-steps", "1")
    assert code == 2 and "nowhere" in err
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--window", "2,1,1", "--out", out)
    assert code == 2 and "lists 3 widths for 2 layers" in err
    assert not (tmp_path / "runs").exists()
    # a directory that existed before is kept, empty or not
    (tmp_path / "mine").mkdir()
    code, _, err = cli("lm", "train", "--data", tmp_path / "nowhere", *tiny, "--out", tmp_path / "mine")
    assert code == 2 and (tmp_path / "mine").is_dir()


def test_window_message_counts_in_words(synthetic, tiny, cli):
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--num-layers", "1", "--window", "2,1")
    assert code == 2 and "--window lists 2 widths for 1 layer; give one width per layer" in err, err


# ---------------------------------------------------------------------------- classify predict


def _write_reviews(root, rng):
    words = {"pos": ["great", "fine", "superb", "loved"], "neg": ["awful", "bad", "boring", "hated"]}
    for split in ("train", "test"):
        for label, vocab in words.items():
            (root / split / label).mkdir(parents=True)
            for i in range(12):
                text = " ".join(rng.choice(vocab + ["the", "film", "was"]) for _ in range(rng.randint(4, 12)))
                (root / split / label / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(text)
    return root


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, cli):
    root = tmp_path_factory.mktemp("imdb")
    data = _write_reviews(root / "aclImdb", random.Random(3))
    out = root / "run"
    code, _, err = cli("classify", "train", "--data", data, "--out", out, *TINY_CLASSIFIER)
    assert code == 0, err
    return out


def test_predict_reads_stdin_and_an_empty_line_fails_alone(classifier, cli, monkeypatch):
    code, by_argument, err = cli("classify", "predict", "--checkpoint", classifier, "great film", "awful film")
    assert code == 0, err
    assert len(by_argument.splitlines()) == 2
    for stdin_args in ((), ("-",)):
        monkeypatch.setattr(sys, "stdin", io.StringIO("great film\n\nawful film\n  <br />  \n"))
        code, stdout, err = cli("classify", "predict", "--checkpoint", classifier, *stdin_args)
        assert code == 1
        assert err == ("quasirnn classify predict: error: line 2: no word to classify\n"
                       "quasirnn classify predict: error: line 4: no word to classify\n")
        lines = stdout.split("\n")
        assert lines[0] == by_argument.splitlines()[0] and lines[2] == by_argument.splitlines()[1]
        assert lines[1] == "" and lines[3] == "" and lines[4] == "" and len(lines) == 5
    monkeypatch.setattr(sys, "stdin", io.StringIO("\nbad\n"))
    code, stdout, err = cli("classify", "predict", "--checkpoint", classifier, "--json", "-", "great")
    assert code == 1 and err.count("\n") == 1 and "line 1: no word" in err
    records = [json.loads(line) for line in stdout.splitlines()]
    assert records[0] == {"error": "no word to classify"} and [r["label"] in ("positive", "negative")
                                                               for r in records[1:]] == [True, True]


# ---------------------------------------------------------------------------- translate's data


def test_translate_finds_its_data_like_lm_and_classify(cli, tmp_path, monkeypatch):
    """$QUASIRNN_DATA/multi30k, then the cache, as lm (ptb) and classify (imdb); --data overrides."""
    code, _, err = cli("translate", "train", "--out", tmp_path / "o", "--max-steps", "1")
    assert code == 2 and err.count("\n") == 1, err
    assert f"no Multi30k found (searched {tmp_path / 'cache' / 'quasirnn' / 'multi30k'})" in err
    assert not (tmp_path / "o").exists()
    root = tmp_path / "data"
    (root / "multi30k").mkdir(parents=True)
    (root / "multi30k" / "train.de").write_text("Ein Hund.\nEine Frau.\n")
    (root / "multi30k" / "train.en").write_text("A dog.\n")  # found, then read: the error names the file
    monkeypatch.setenv("QUASIRNN_DATA", str(root))
    code, _, err = cli("translate", "train", "--out", tmp_path / "o", "--max-steps", "1")
    assert code == 2 and str(root / "multi30k" / "train.de") in err and "2 lines" in err, err
    code, _, err = cli("translate", "train", "--data", tmp_path / "given", "--out", tmp_path / "o", "--max-steps", "1")
    assert code == 2 and str(tmp_path / "given") in err and "multi30k" not in err, err


# ---------------------------------------------------------------------------- python -m, --version, help


def test_python_m_quasirnn_runs_the_cli_and_prints_the_version(child_env):
    run = lambda *argv: subprocess.run([sys.executable, "-m", "quasirnn", *argv], capture_output=True, text=True,
                                       env=child_env(), timeout=120)
    result = run("--version")
    assert result.returncode == 0 and result.stdout == f"quasirnn {importlib.metadata.version('quasirnn')}\n"
    result = run("lm", "train", "--epochs", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "quasirnn lm train: error: --epochs must be >= 1, got 0 (see quasirnn lm train --help)\n"


def _parsers(parser, path=("quasirnn",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            assert action.metavar == "COMMAND", (path, action.metavar)
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_help_texts_have_no_markup_and_every_option_has_help():
    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        for markup in ("``", ":class:", ":mod:", ":func:", ":data:", ":meth:"):
            assert markup not in text, (path, markup)
        if len(path) == 3:
            assert parser.description, path
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert action.help and not action.help.startswith("(default"), (path, action.option_strings)
    commands = dict((p, parser) for p, parser in _parsers(build_parser()))
    for command in ("lm", "classify"):
        description = commands[("quasirnn", command, "train")].description
        assert "SRU" in description and "QRNN or LSTM" not in description
    assert "SRU" in build_parser().description
