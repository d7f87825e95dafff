"""Kernel choice: the C++ extension in the normal environment, and the pure-PyTorch fallback
when it is disabled (QUASIRNN_NO_EXTENSION=1) or fails to build (warning once)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import quasirnn
from quasirnn.ops import cpu_extension, forget_mult, qrnn_pooling, torch_kernel

SRC = str(Path(quasirnn.__file__).resolve().parents[1])

# Runs in a fresh interpreter; prints OK at the end if every check passed.
CHECKS = """
import warnings
import torch
from quasirnn import QRNN
from quasirnn.ops import cpu_extension, forget_mult, qrnn_pooling, sru_recurrence

torch.manual_seed(0)
f = torch.sigmoid(torch.randn(5, 3, 7, dtype=torch.float64)).requires_grad_()
z = torch.randn(5, 3, 7, dtype=torch.float64, requires_grad=True)
c0 = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
g = torch.randn(5, 3, 7, dtype=torch.float64)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = forget_mult(f, z, c0, backend="auto")
    grads = torch.autograd.grad(out, (f, z, c0), g)
    ref = forget_mult(f, z, c0, backend="reference")
    ref_grads = torch.autograd.grad(ref, (f, z, c0), g)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads, ref_grads, rtol=1e-12, atol=1e-12)

    gates = torch.randn(4, 2, 12, dtype=torch.float64)
    torch.testing.assert_close(
        qrnn_pooling(gates, None, "fo", backend="auto"),
        qrnn_pooling(gates, None, "fo", backend="reference"),
        rtol=1e-12, atol=1e-12,
    )
    model = QRNN(3, 4, num_layers=2, window=2).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    ref_model = QRNN(3, 4, num_layers=2, window=2, backend="reference").double()
    ref_model.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x)[0], ref_model(x)[0], rtol=1e-12, atol=1e-12)
    u = torch.randn(4, 2, 9, dtype=torch.float64)
    xs, vb = torch.randn(4, 2, 3, dtype=torch.float64), torch.randn(2, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(
        sru_recurrence(u, vb[0], vb[1], x=xs, backend="auto"),
        sru_recurrence(u, vb[0], vb[1], x=xs, backend="reference"),
        rtol=1e-12, atol=1e-12,
    )

    assert cpu_extension.load() is False
    assert cpu_extension.load() is False  # cached, no second attempt
    for call in (
        lambda: forget_mult(f, z, backend="cpu"),
        lambda: qrnn_pooling(gates, None, "fo", backend="cpu"),
        lambda: sru_recurrence(u, vb[0], vb[1], x=xs, backend="cpu"),
    ):
        try:
            call()
        except RuntimeError as exc:
            assert "backend='cpu' requested but the C++ kernel could not be built" in str(exc), str(exc)
        else:
            raise AssertionError("backend='cpu' did not raise")

runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
print("WARNINGS", len(runtime))
for w in runtime:
    print("MESSAGE", w.message)
print("OK")
"""

# Make the build fail: cpu_extension calls torch.utils.cpp_extension.load.
BREAK_BUILD = """
import torch.utils.cpp_extension
def _no_compiler(*args, **kwargs):
    raise OSError("no C++ compiler found")
torch.utils.cpp_extension.load = _no_compiler
"""


def _run(script: str, **env_overrides: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_overrides)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.rstrip().endswith("OK"), proc.stdout
    return proc.stdout


def test_disabled_extension_falls_back_to_torch_kernel():
    out = _run(CHECKS, QUASIRNN_NO_EXTENSION="1")
    # Disabled on purpose: no build attempt, so nothing to warn about.
    assert "WARNINGS 0" in out, out


def test_failed_build_warns_once_and_falls_back():
    out = _run(BREAK_BUILD + CHECKS, QUASIRNN_NO_EXTENSION="0")  # "0" means: do try to build
    assert "WARNINGS 1" in out, out
    assert "could not build the C++ CPU pooling kernel (OSError:" in out and "no C++ compiler found" in out, out
    assert "pure-PyTorch kernel" in out, out


# --------------------------------------------------------------------------- normal environment


def test_extension_loads_here():
    assert cpu_extension.load() is True
    assert hasattr(torch.ops.quasirnn_cpu, "pool_forward")
    assert hasattr(torch.ops.quasirnn_cpu, "pool_backward")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_auto_uses_cpp_kernel_for_cpu_float(monkeypatch, dtype):
    """With the extension loaded, "auto" never touches the pure-PyTorch kernel for CPU float32/64."""

    def forbidden(*args, **kwargs):
        raise AssertionError("auto backend used the pure-PyTorch kernel")

    monkeypatch.setattr(torch_kernel, "pool_forward", forbidden)
    monkeypatch.setattr(torch_kernel, "pool_backward", forbidden)
    f = torch.sigmoid(torch.randn(4, 2, 5, dtype=dtype)).requires_grad_()
    z = torch.randn(4, 2, 5, dtype=dtype, requires_grad=True)
    forget_mult(f, z, backend="auto").sum().backward()
    gates = torch.randn(4, 2, 15, dtype=dtype, requires_grad=True)
    h, _, c_last = qrnn_pooling(gates, None, "fo", backend="auto")
    (h.sum() + c_last.sum()).backward()
    assert f.grad is not None and gates.grad is not None


def test_auto_uses_torch_kernel_for_other_dtypes(monkeypatch):
    """bfloat16 has no C++ kernel: "auto" takes the PyTorch kernel (and "cpu" refuses)."""
    calls = []
    original = torch_kernel.pool_forward

    def spy(*args, **kwargs):
        calls.append(args[0].dtype)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch_kernel, "pool_forward", spy)
    f = torch.sigmoid(torch.randn(4, 2, 5)).bfloat16()
    z = torch.randn(4, 2, 5).bfloat16()
    out = forget_mult(f, z, backend="auto")
    # The 16-bit call runs the same kernel again on float32 copies, which the spy sees too.
    assert calls == [torch.bfloat16, torch.float32]
    ref = forget_mult(f.double(), z.double(), backend="reference")
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)
