"""Shared fixtures for the pooling-kernel tests."""

from __future__ import annotations

import pytest
import torch

# Tolerances for comparing a fast kernel with the plain-loop reference.
TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}

FAST_BACKENDS = ("cpu", "torch")  # "cpu" = C++ kernel, "torch" = vectorised PyTorch kernel


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=FAST_BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def tol(dtype):
    return TOLERANCES[dtype]
