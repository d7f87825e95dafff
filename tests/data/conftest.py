"""Fixtures for the corpus tests: small corpora written to temp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest


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
