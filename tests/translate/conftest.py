"""Fixtures of the translation tests: a small real slice of Multi30k German–English, and an
in-process ``quasirnn`` runner."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from pathlib import Path

import pytest

from quasirnn.cli.main import main


def multi30k_dir() -> Path:
    """$QUASIRNN_TEST_MULTI30K, else shared/data/multi30k beside the repository."""
    value = os.environ.get("QUASIRNN_TEST_MULTI30K")
    return Path(value) if value else Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "multi30k"


SPLITS = {"train": 400, "val": 60, "test_2016_flickr": 40}


@pytest.fixture(scope="session")
def multi30k_slice(tmp_path_factory) -> Path:
    """The first lines of the real train (400), val (60) and test_2016_flickr (40) files, de and
    en, gzip like the originals, in a temp dir; skips when the corpus is not there."""
    source = multi30k_dir()
    if not all((source / f"{s}.{lang}.gz").is_file() for s in SPLITS for lang in ("de", "en")):
        pytest.skip(f"Multi30k not found at {source} (set QUASIRNN_TEST_MULTI30K to a folder with train.de.gz ...)")
    out = tmp_path_factory.mktemp("multi30k_slice")
    for split, n in SPLITS.items():
        for lang in ("de", "en"):
            with gzip.open(source / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(n)]
            with gzip.open(out / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.writelines(lines)
    return out


def run(*argv) -> tuple[int, str, str]:
    """Runs ``quasirnn ARGV`` in this process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def cli():
    """``cli(*argv) -> (exit status, stdout, stderr)``."""
    return run
