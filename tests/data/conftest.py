"""Fixtures for the corpus tests: small corpora written to temp dirs, and the real PTB if present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def ptb_dir() -> Path:
    """The real Penn Treebank: $QUASIRNN_TEST_DATA, else shared/data/ptb beside the repository."""
    env = os.environ.get("QUASIRNN_TEST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ptb"


@pytest.fixture(scope="session")
def real_ptb() -> Path:
    path = ptb_dir()
    if not all((path / f"ptb.{s}.txt").is_file() for s in ("train", "valid", "test")):
        pytest.skip(f"real Penn Treebank not found at {path} (set QUASIRNN_TEST_DATA to a directory with ptb.*.txt)")
    return path


def _write_corpus(directory: Path, texts: dict[str, str], pattern: str = "ptb.{split}.txt") -> Path:
    """Writes ``texts[split]`` to ``directory/pattern`` for each split; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (directory / pattern.format(split=split)).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def write_corpus():
    """``write_corpus(directory, {split: text}, pattern="ptb.{split}.txt") -> directory``."""
    return _write_corpus
