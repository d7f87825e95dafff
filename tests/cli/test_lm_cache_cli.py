"""`quasirnn lm eval --cache-pointer`: the neural cache on a trained run (synthetic corpus), its
settings per preset, its JSON and its option errors."""

from __future__ import annotations

import json
import math
import re

import pytest

from quasirnn.experiments.language_model import cache_defaults


@pytest.fixture(scope="module")
def runs(synthetic, tmp_path_factory, cli, tiny):
    """Two tiny QRNN runs on the synthetic corpus: one with the default options, one from the WikiText-2 preset."""
    root = tmp_path_factory.mktemp("cache_runs")
    plain = cli("lm", "train", "--data", synthetic, "--out", root / "plain", *tiny, "--epochs", "1")
    preset = cli("lm", "train", "--data", synthetic, "--out", root / "wt2", "--preset", "awd-qrnn-wt2", *tiny,
                 "--max-steps", "2")
    assert plain[0] == 0 and preset[0] == 0, plain[2] + preset[2]
    return {"plain": root / "plain", "wt2": root / "wt2"}


def eval_json(cli, *argv):
    code, stdout, err = cli("lm", "eval", *argv, "--json")
    assert code == 0, err
    return json.loads(stdout)


def test_eval_with_the_cache_prints_the_cached_perplexity_and_json_carries_both(runs, cli, synthetic):
    result = eval_json(cli, "--checkpoint", runs["plain"], "--cache-pointer", "--cache-window", "20")
    assert set(result) == {"split", "ppl", "loss", "plain_ppl", "plain_loss", "tokens", "cache", "checkpoint", "data"}
    # no preset: PTB's theta and lambda (pointer.py's command in the awd-lstm-lm README), the window given
    assert result["cache"] == {"window": 20, "theta": 1.0, "lambda": 0.1}
    assert result["ppl"] == pytest.approx(math.exp(result["loss"]))
    assert result["plain_ppl"] == pytest.approx(math.exp(result["plain_loss"]))
    assert result["ppl"] != pytest.approx(result["plain_ppl"], rel=1e-4)
    test_tokens = sum(len(line.split()) + 1 for line in (synthetic / "ptb.test.txt").read_text().splitlines())
    assert result["split"] == "test" and result["tokens"] == test_tokens - 1  # one stream: every word but the first
    # the plain perplexity is lm eval's at batch size 1
    plain = eval_json(cli, "--checkpoint", runs["plain"], "--batch-size", "1")
    assert result["plain_ppl"] == pytest.approx(plain["ppl"], rel=1e-6)
    # lambda 0: the model alone
    off = eval_json(cli, "--checkpoint", runs["plain"], "--cache-pointer", "--cache-lambda", "0", "--bptt", "7")
    assert off["ppl"] == off["plain_ppl"] == pytest.approx(plain["ppl"], rel=1e-6)
    code, stdout, _ = cli("lm", "eval", "--checkpoint", runs["plain"], "--cache-pointer", "--cache-window", "20",
                          "--split", "valid")
    assert code == 0
    assert re.fullmatch(r"valid perplexity [0-9.]+ with the neural cache \(window 20, theta 1, lambda 0\.1\), "
                        r"[0-9.]+ without \(loss [0-9.]+ nats/token over [0-9,]+ tokens, batch size 1\)\n", stdout)


def test_a_run_from_a_preset_gets_its_cache_settings(runs, cli):
    result = eval_json(cli, "--checkpoint", runs["wt2"], "--cache-pointer")
    assert result["cache"] == cache_defaults("awd-qrnn-wt2").as_dict() == {"window": 3785, "theta": 0.662,
                                                                            "lambda": 0.1279}
    # the synthetic test split is shorter than the window: the cache never applies
    assert result["ppl"] == result["plain_ppl"]
    result = eval_json(cli, "--checkpoint", runs["wt2"], "--cache-pointer", "--cache-window", "30", "--cache-theta", "2")
    assert result["cache"] == {"window": 30, "theta": 2.0, "lambda": 0.1279}


@pytest.mark.parametrize("options, message", [
    (("--cache-pointer", "--cache-window", "0"), "--cache-window must be >= 1, got 0"),
    (("--cache-pointer", "--cache-theta", "-1"), "--cache-theta must be a finite number >= 0, got -1.0"),
    (("--cache-pointer", "--cache-lambda", "1.5"), r"--cache-lambda must be in \[0, 1\], got 1.5"),
    (("--cache-pointer", "--batch-size", "4"), r"--cache-pointer evaluates the split as one stream .*: leave --batch-size out"),
    (("--cache-window", "20",), "--cache-window is a setting of the neural cache: add --cache-pointer"),
    (("--cache-lambda", "0.2",), "--cache-lambda is a setting of the neural cache: add --cache-pointer"),
])
def test_bad_cache_options_are_one_line_errors(runs, cli, options, message):
    code, stdout, err = cli("lm", "eval", "--checkpoint", runs["plain"], *options)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and re.fullmatch(f"quasirnn: error: {message}\n", err), err


def test_an_unparsable_cache_value_is_a_usage_error(runs, cli):
    code, _, err = cli("lm", "eval", "--checkpoint", runs["plain"], "--cache-pointer", "--cache-window", "many")
    assert code == 2 and err.count("\n") == 1 and "--cache-window" in err, err


def test_the_cache_alone_missing_a_word_gives_an_infinite_perplexity(runs, cli):
    """λ = 1, window 1: the cache holds only the current word, never the next one on the synthetic ring."""
    options = ("lm", "eval", "--checkpoint", runs["plain"], "--cache-pointer", "--cache-window", "1", "--cache-lambda", "1")
    result = json.loads(cli(*options, "--json")[1])
    assert result["ppl"] is None and result["loss"] is None and result["plain_ppl"] > 1  # JSON has no inf
    code, stdout, _ = cli(*options)
    assert code == 0 and stdout.startswith("test perplexity inf with the neural cache (window 1, theta 1, lambda 1), ")
