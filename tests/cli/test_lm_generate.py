"""``quasirnn lm generate``: the text is the Python call's words (<eos> as a line break), streamed word by
word; seeds; greedy top-k 1; stdin prompts; unknown prompt words; bad options and checkpoints."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest
import torch

from quasirnn.checkpoint_file import save_checkpoint
from quasirnn.cli.main import main
from quasirnn.experiments.language_model.generate import TextGenerator
from quasirnn.models import LanguageModel

WORDS = 40


@pytest.fixture(scope="module")
def run(synthetic, tmp_path_factory, cli, tiny):
    """A qrnn language model trained for three epochs on the synthetic corpus (sentences of 3 to 9 words)."""
    out = tmp_path_factory.mktemp("generate") / "run"
    code, _, err = cli("lm", "train", "--data", synthetic, "--out", out, *tiny, "--epochs", "3")
    assert code == 0, err
    return out


def render(words: list[str]) -> str:
    """The command's text for ``words``: spaces between words, a line break for <eos> and at the end."""
    text = ""
    for word in words:
        text += "\n" if word == "<eos>" else word if text == "" or text.endswith("\n") else " " + word
    return text if text.endswith("\n") else text + "\n"


def python_words(run, prompts, seed, words=WORDS, **kwargs):
    gen = TextGenerator.load(run / "checkpoint.pt", torch.device("cpu"), seed)
    return [list(gen.continuation(p, words, **kwargs)) for p in prompts]


def test_prints_the_python_calls_words_with_eos_as_line_breaks(run, cli):
    code, out, err = cli("lm", "generate", "--checkpoint", run, "--prompt", "w3 w4", "--words", WORDS, "--seed", 7)
    assert code == 0 and err == ""
    [words] = python_words(run, ["w3 w4"], 7)
    assert words.count("<eos>") >= 2  # sentences of 3 to 9 words: several ends in 40 words
    assert out == render(words) and "<eos>" not in out
    assert len(out.split()) + words.count("<eos>") == WORDS


def test_same_seed_same_text_other_seed_other_text(run, cli):
    texts = [cli("lm", "generate", "--checkpoint", run, "--prompt", "w1", "--seed", s, "--temperature", "1.5")[1]
             for s in (3, 3, 4)]
    assert texts[0] == texts[1] != texts[2]


def test_top_k_1_is_greedy_and_ignores_the_seed(run, cli):
    texts = {cli("lm", "generate", "--checkpoint", run, "--prompt", "w10 w11", "--top-k", 1,
                 "--words", WORDS, *seed)[1]
             for seed in ((), ("--seed", 1), ("--seed", 2))}
    [words] = python_words(run, ["w10 w11"], 0, top_k=1)
    assert texts == {render(words)}


def test_top_k_and_top_p_reach_the_model(run, cli):
    code, out, _ = cli("lm", "generate", "--checkpoint", run, "--prompt", "w5", "--seed", 2, "--top-k", 3,
                       "--top-p", 0.8, "--temperature", 0.7, "--words", WORDS)
    assert code == 0 and out == render(python_words(run, ["w5"], 2, top_k=3, top_p=0.8, temperature=0.7)[0])


def test_float16_weights(run, cli):
    code, out, _ = cli("lm", "generate", "--checkpoint", run, "--prompt", "w5", "--seed", 2, "--dtype", "float16",
                       "--words", WORDS)
    gen = TextGenerator.load(run, seed=2, dtype="float16")
    assert gen.model.encoder.weight.dtype == torch.float16
    assert code == 0 and out == render(list(gen.continuation("w5", WORDS)))


def test_stdin_prompts_one_a_line_each_continued_from_the_zero_state(run, cli, monkeypatch):
    prompts = ["w5 w6", "", "w20 w21 w22"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("w5 w6\n\nw20 w21 w22\n"))
    code, out, err = cli("lm", "generate", "--checkpoint", run, "--words", WORDS, "--seed", 11)
    assert code == 0 and err == ""
    # one generator for the command: the seed gives the whole output; continuations separated by an empty line
    assert out == "\n".join(render(words) for words in python_words(run, prompts, 11))


def test_unknown_prompt_words_read_as_unk_with_one_warning(run, cli, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("w1 zebra w2\nokapi w3 zebra\n"))
    code, out, err = cli("lm", "generate", "--checkpoint", run, "--seed", 0, "--top-k", 1, "--words", WORDS)
    assert code == 0
    assert err.splitlines() == ["quasirnn: warning: 2 prompt words not in the vocabulary, read as <unk>: zebra okapi"]
    assert out == "\n".join(render(words) for words in python_words(run, ["w1 <unk> w2", "<unk> w3 <unk>"], 0,
                                                                   top_k=1))


def test_words_are_flushed_one_at_a_time(run):
    class Flushes(io.StringIO):
        def __init__(self):
            super().__init__()
            self.seen = []

        def flush(self):
            self.seen.append(self.getvalue())

    out = Flushes()
    with contextlib.redirect_stdout(out):
        assert main(["lm", "generate", "--checkpoint", str(run), "--prompt", "w2", "--words", "12", "--seed", "0"]) == 0
    # a flush after every word (and the closing line break): each flush shows one word more
    grown = [after[len(before):] for before, after in zip([""] + out.seen, out.seen) if after != before]
    assert len(grown) >= 12 and all(piece.strip().count(" ") == 0 for piece in grown)


def test_the_command_uses_the_runs_own_kernel(run, synthetic, tmp_path, cli, tiny, child_env):
    """Generation steps the QRNN with the run's --backend: a run trained with --backend torch
    generates without importing numba (its import and cache load are not paid), the words of
    the Python call."""
    out = tmp_path / "torch-run"
    code, _, err = cli("lm", "train", "--data", synthetic, "--out", out, *tiny, "--epochs", "1", "--backend", "torch")
    assert code == 0, err
    code = ("import sys; from quasirnn.cli.main import main; "
            f"assert main(['lm', 'generate', '--checkpoint', {str(out)!r}, '--prompt', 'w1', '--seed', '0']) == 0; "
            "assert 'numba' not in sys.modules, 'numba was imported'")
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render(python_words(out, ["w1"], 0, words=50)[0])


@pytest.mark.parametrize("option, value, message", [
    ("--words", "0", "--words must be >= 1, got 0"),
    ("--temperature", "0", "--temperature must be a finite number > 0, got 0.0"),
    ("--temperature", "-2", "--temperature must be a finite number > 0, got -2.0"),
    ("--top-k", "0", "--top-k must be >= 1, got 0"),
    ("--top-p", "0", r"--top-p must be in \(0, 1\], got 0.0"),
    ("--top-p", "1.5", r"--top-p must be in \(0, 1\], got 1.5"),
    ("--top-p", "x", "--top-p: expected a number, got 'x'"),
    ("--dtype", "float64", "--dtype: invalid choice: 'float64'"),
])
def test_bad_values_are_one_line_errors_naming_the_option(run, cli, option, value, message):
    code, out, err = cli("lm", "generate", "--checkpoint", run, "--prompt", "w1", option, value)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("quasirnn lm generate: error: ") and __import__("re").search(message, err), err


def test_truncated_foreign_and_missing_checkpoints_are_one_line_errors(run, cli, tmp_path):
    data = (run / "checkpoint.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    save_checkpoint(tmp_path / "classifier.pt", "classifier", {}, model={})
    (tmp_path / "notes.txt").write_text("w1 w2\n")
    for name, message in (("truncated.pt", "truncated or corrupted"), ("classifier.pt", "classifier"),
                          ("notes.txt", "text file"), ("missing.pt", "missing.pt")):
        code, out, err = cli("lm", "generate", "--checkpoint", tmp_path / name, "--prompt", "w1")
        assert code == 2 and out == "", name
        assert len(err.splitlines()) == 1 and err.startswith("quasirnn: error: ") and message in err, err


def test_a_vocabulary_without_unk_refuses_an_unknown_word():
    from quasirnn.data.vocabulary import Vocabulary
    from quasirnn.errors import ConfigError

    gen = TextGenerator(LanguageModel(3, 4, 4, num_layers=1), Vocabulary(["<eos>", "a", "b"]), seed=0)
    assert len(list(gen.continuation("a b", 2))) == 2
    with pytest.raises(ConfigError, match="the prompt word 'c' is not in the vocabulary, which has no <unk>"):
        next(gen.continuation("a c", 2))
