"""Fixtures shared by every test folder: a scratch user cache; the real Penn Treebank, IMDb and Multi30k,
when they are present; an in-process ``quasirnn`` runner; the Triton interpreter switched on where there
is no GPU."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from pathlib import Path

import pytest
import torch

# Without a GPU the Triton pooling kernels run in Triton's CPU interpreter, so CI tests them
# against the reference (the variable must be set before triton defines the kernels).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True, scope="session")
def scratch_user_cache(tmp_path_factory):
    """The user cache ($QUASIRNN_CACHE: corpora caches, downloads) is a scratch folder for the whole
    session, child processes included: no test writes to ~/.cache/quasirnn."""
    patch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("user-cache")
    patch.setenv("QUASIRNN_CACHE", str(path))
    yield path
    patch.undo()


def _shared_data(env: str, name: str) -> Path:
    """$``env`` when set, else ``shared/data/<name>`` beside the repository."""
    value = os.environ.get(env)
    return Path(value) if value else Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / name


def ptb_dir() -> Path:
    """The real Penn Treebank: $QUASIRNN_TEST_DATA, else shared/data/ptb beside the repository."""
    return _shared_data("QUASIRNN_TEST_DATA", "ptb")


@pytest.fixture(scope="session")
def real_ptb() -> Path:
    """Directory holding ptb.{train,valid,test}.txt; skips the test when they are not there."""
    path = ptb_dir()
    if not all((path / f"ptb.{s}.txt").is_file() for s in ("train", "valid", "test")):
        pytest.skip(f"real Penn Treebank not found at {path} (set QUASIRNN_TEST_DATA to a directory with ptb.*.txt)")
    return path.resolve()


def imdb_path() -> Path:
    """The IMDb archive: $QUASIRNN_TEST_IMDB (archive or directory), else shared/data/imdb beside the repository."""
    return _shared_data("QUASIRNN_TEST_IMDB", "imdb")


@pytest.fixture(scope="session")
def real_imdb() -> Path:
    """The real IMDb archive (or aclImdb/ directory); skips the test when it is not there."""
    from quasirnn.data.imdb_reader import find_imdb
    from quasirnn.errors import DataError

    try:
        return find_imdb(imdb_path()).resolve()
    except DataError as exc:
        pytest.skip(f"real IMDb data not found ({exc}); set QUASIRNN_TEST_IMDB to aclImdb_labeled.tar.xz")


@pytest.fixture(scope="session")
def imdb_slice(real_imdb, tmp_path_factory) -> Path:
    """A small real slice of IMDb as an extracted aclImdb/ directory in a temp dir: the first
    500 reviews of each of train/neg, train/pos, test/neg, test/pos (read by streaming the archive)."""
    from quasirnn.data.imdb_reader import LABELS, read_imdb

    root = tmp_path_factory.mktemp("imdb_slice") / "aclImdb"
    for split, reviews in read_imdb(real_imdb, limit=500).items():
        for review in reviews:
            folder = root / split / LABELS[review.label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{review.id}_{review.rating}.txt").write_text(review.text, encoding="utf-8")
    return root


def multi30k_dir() -> Path:
    """Multi30k German–English: $QUASIRNN_TEST_MULTI30K, else shared/data/multi30k beside the repository."""
    return _shared_data("QUASIRNN_TEST_MULTI30K", "multi30k")


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


def run_cli(*argv) -> tuple[int, str, str]:
    """Runs ``quasirnn ARGV`` in this process; returns (exit status, stdout, stderr)."""
    from quasirnn.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def cli():
    """``cli(*argv) -> (exit status, stdout, stderr)``: runs ``quasirnn ARGV`` in this process."""
    return run_cli
