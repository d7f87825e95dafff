"""Fixtures of the benchmark scripts' tests: a script under benchmarks/ loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    """benchmarks/NAME.py as a module, in sys.modules while the tests use it (dataclasses look their
    module up there)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[name]


@pytest.fixture(scope="module")
def tfm():
    """benchmarks/transformer_lm.py."""
    yield from _script("transformer_lm")


@pytest.fixture(scope="module")
def awd_compare():
    """benchmarks/awd_compare.py."""
    yield from _script("awd_compare")
