"""Fixtures for the command-line tests: a small synthetic corpus, a slice of the real Penn Treebank,
and the environment that makes child processes import this checkout (the in-process runner ``cli``
is in tests/conftest.py)."""

from __future__ import annotations

import os
import random
import urllib.request
from pathlib import Path

import pytest

import quasirnn

#: The ``src`` folder this checkout's quasirnn is imported from (child processes must import the same).
SRC = Path(quasirnn.__file__).resolve().parents[1]



@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No network, no real cache, and a scratch working directory (default outputs go to runs/)."""

    def no_network(*args, **kwargs):
        raise AssertionError("a CLI test tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("QUASIRNN_CACHE", str(tmp_path / "cache" / "quasirnn"))
    monkeypatch.delenv("QUASIRNN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


def make_synthetic_corpus(directory: Path, seed: int = 0) -> Path:
    """A tiny learnable corpus: sentences walk a ring of 30 words; some words are <unk>."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30)]

    def sentence() -> str:
        start = rng.randrange(30)
        toks = [words[(start + k) % 30] for k in range(rng.randint(3, 9))]
        if rng.random() < 0.2:
            toks[rng.randrange(len(toks))] = "<unk>"
        return " " + " ".join(toks) + " "

    directory.mkdir(parents=True, exist_ok=True)
    for split, lines in (("train", 500), ("valid", 60), ("test", 60)):
        (directory / f"ptb.{split}.txt").write_text("\n".join(sentence() for _ in range(lines)) + "\n")
    return directory


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    return make_synthetic_corpus(tmp_path_factory.mktemp("synthetic"))


#: Small, fast model options for the synthetic corpus.
TINY = ("--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--bptt", "10", "--batch-size", "8",
        "--eval-batch-size", "4", "--lr", "0.01", "--quiet")


@pytest.fixture(scope="session")
def tiny() -> tuple[str, ...]:
    """Options of a small, fast model for the synthetic corpus (quiet)."""
    return TINY


def _child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="session")
def child_env():
    """``child_env(**extra) -> env``: the environment of a child process that imports this checkout's
    quasirnn (one thread), with ``extra`` variables."""
    return _child_env


@pytest.fixture(scope="session")
def ptb_slice(real_ptb, tmp_path_factory) -> Path:
    """The first 400 lines of the real PTB training split and 60 of validation and test (≈ 8,800 training tokens)."""
    directory = tmp_path_factory.mktemp("ptb_slice")
    for split, lines in (("train", 400), ("valid", 60), ("test", 60)):
        with open(real_ptb / f"ptb.{split}.txt", encoding="utf-8") as f:
            head = [next(f) for _ in range(lines)]
        (directory / f"ptb.{split}.txt").write_text("".join(head), encoding="utf-8")
    return directory
