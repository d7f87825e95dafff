"""Fixtures of the translation tests: an in-process ``quasirnn`` runner (the small real slice of
Multi30k, ``multi30k_slice``, is in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import io

import pytest

from quasirnn.cli.main import main


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
