"""Shared fixtures for the pooling-kernel tests."""

from __future__ import annotations

import pytest
import torch

# Tolerances for comparing a fast kernel with the plain-loop reference.
TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}

from quasirnn.ops import triton_runtime

# "cpu" = numba kernel, "torch" = vectorised PyTorch kernel, "triton" = the Triton kernels, which
# take these tests' CPU tensors under the Triton interpreter (switched on in tests/conftest.py).
FAST_BACKENDS = ("cpu", "torch") + (("triton",) if triton_runtime.usable_on(torch.device("cpu")) else ())


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


#: Largest T·B·H the shared backend tests send to the Triton interpreter (it runs each program
#: in Python; the larger shapes take minutes there and are covered on a GPU instead).
INTERPRETER_MAX_ELEMENTS = 5000


@pytest.fixture(autouse=True)
def _interpreter_size_limit(request):
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("backend") != "triton" or not triton_runtime.interpreting():
        return
    T, B, H = (callspec.params.get(k) for k in "TBH")
    if None not in (T, B, H) and T * B * H > INTERPRETER_MAX_ELEMENTS:
        pytest.skip(f"T*B*H = {T * B * H} is too large for the Triton interpreter (tested on GPUs)")


@pytest.fixture
def outputs_and_grads():
    """``run(model, x)``: a recurrent stack's output, final memory and weight gradients (of
    ``out.square().sum() + c_T.sum()``) on ``x``, to compare one model's backends."""

    def run(model, x):
        out, state = model(x)
        loss = out.square().sum() + state.c.sum()
        return out, state.c, torch.autograd.grad(loss, list(model.parameters()))

    return run
