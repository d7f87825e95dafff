"""Every ``>>>`` example in the docstrings of ``quasirnn`` runs as a doctest (issue 17, item 6).

One test case per module (collected with :mod:`pkgutil`). A module that cannot be imported on this
machine because a GPU-only dependency is missing (triton) is skipped; any other import error fails;
a module without examples passes once it imports. The public API modules of :data:`PUBLIC` must
have examples. Examples must be fast and deterministic: they print shapes or rounded values.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import torch

import quasirnn

#: Modules that need a GPU-only package to import.
GPU_ONLY = ("triton",)
#: Public API modules whose docstrings must hold examples.
PUBLIC = (
    "quasirnn.convert", "quasirnn.onnx", "quasirnn.quantization", "quasirnn.ops.pooling", "quasirnn.ops.sru", "quasirnn.ops.pooling.reference",
    "quasirnn.ops.sru.reference",
    "quasirnn.nn.qrnn", "quasirnn.nn.sru",
    "quasirnn.nn.streaming",
    "quasirnn.data.batching", "quasirnn.data.vocabulary",
    "quasirnn.data.lm_corpus", "quasirnn.data.imdb", "quasirnn.data.imdb_reader", "quasirnn.data.bitext",
    "quasirnn.training.progress", "quasirnn.training.task",
)


def _examples(module) -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, module.__name__, module=module) if t.examples]


def _module_names() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(quasirnn.__path__, prefix="quasirnn."))


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples_run(name):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in GPU_ONLY:
            pytest.skip(f"{name} needs {exc.name}")
        raise
    tests = _examples(module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    with torch.random.fork_rng(devices=[]):  # the examples' seeds do not leak into other tests
        torch.manual_seed(0)
        for test in tests:
            runner.run(test, out=report.append)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}:\n" + "".join(report)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_api_modules_have_examples(name):
    assert _examples(importlib.import_module(name)), f"{name} has no docstring example"
