"""Fixtures shared by every test folder: the real Penn Treebank, when it is present; the
Triton interpreter switched on where there is no GPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Without a GPU the Triton pooling kernels run in Triton's CPU interpreter, so CI tests them
# against the reference (the variable must be set before triton defines the kernels).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def ptb_dir() -> Path:
    """The real Penn Treebank: $QUASIRNN_TEST_DATA, else shared/data/ptb beside the repository."""
    env = os.environ.get("QUASIRNN_TEST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ptb"


@pytest.fixture(scope="session")
def real_ptb() -> Path:
    """Directory holding ptb.{train,valid,test}.txt; skips the test when they are not there."""
    path = ptb_dir()
    if not all((path / f"ptb.{s}.txt").is_file() for s in ("train", "valid", "test")):
        pytest.skip(f"real Penn Treebank not found at {path} (set QUASIRNN_TEST_DATA to a directory with ptb.*.txt)")
    return path.resolve()
