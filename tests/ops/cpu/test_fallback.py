"""Kernel choice: the numba CPU kernels in the normal environment, right after installation
(no compiler, no ninja, empty caches), and the pure-PyTorch fallback when they are disabled
(QUASIRNN_NO_NUMBA=1) or numba cannot be imported (warning once)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import quasirnn
from quasirnn.ops import forget_mult, qrnn_pooling, sru_recurrence
from quasirnn.ops.pooling import torch_kernel as pooling_torch_kernel
from quasirnn.ops.sru import torch_kernel as sru_torch_kernel
from quasirnn.ops._cpu import runtime as cpu_runtime

SRC = str(Path(quasirnn.__file__).resolve().parents[1])

# Runs in a fresh interpreter; prints OK at the end if every check passed.
CHECKS = """
import warnings
import torch
from quasirnn import QRNN
from quasirnn.ops import forget_mult, qrnn_pooling, sru_recurrence
from quasirnn.ops._cpu import runtime as cpu_runtime

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

    assert cpu_runtime.available() is False
    assert cpu_runtime.available() is False  # cached, no second attempt
    for call in (
        lambda: forget_mult(f, z, backend="cpu"),
        lambda: qrnn_pooling(gates, None, "fo", backend="cpu"),
        lambda: sru_recurrence(u, vb[0], vb[1], x=xs, backend="cpu"),
    ):
        try:
            call()
        except RuntimeError as exc:
            assert "backend='cpu' requested but numba is not usable" in str(exc), str(exc)
        else:
            raise AssertionError("backend='cpu' did not raise")

runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
print("WARNINGS", len(runtime))
for w in runtime:
    print("MESSAGE", w.message)
print("OK")
"""

# Make numba unimportable, as on a platform without numba wheels.
BREAK_NUMBA = """
import sys
sys.modules["numba"] = None
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


def test_disabled_kernels_fall_back_to_torch_kernel():
    out = _run(CHECKS, QUASIRNN_NO_NUMBA="1")
    # Disabled on purpose: nothing to warn about.
    assert "WARNINGS 0" in out, out


def test_missing_numba_warns_once_and_falls_back():
    out = _run(BREAK_NUMBA + CHECKS, QUASIRNN_NO_NUMBA="0")  # "0" means: do use numba
    assert "WARNINGS 1" in out, out
    assert "numba is not usable (ModuleNotFoundError:" in out, out
    assert "pure-PyTorch kernel" in out, out


# A fresh interpreter as right after `pip install`: no compiler (CC, CXX) and no ninja on PATH, empty
# numba and torch-extension caches. The numba kernels must run (the PyTorch kernel is forbidden),
# with no warning, and only the one-line compile notice on stderr.
FRESH = """
import time, warnings
start = time.perf_counter()
import torch
from quasirnn import QRNN, SRU
from quasirnn.ops.pooling import cpu_kernel as cpu_pooling, torch_kernel as pooling_torch_kernel
from quasirnn.ops.sru import cpu_kernel as cpu_sru, torch_kernel as sru_torch_kernel

def forbidden(*args, **kwargs):
    raise AssertionError("the pure-PyTorch kernel ran")
for module, name in ((pooling_torch_kernel, "pool_forward"), (pooling_torch_kernel, "pool_backward"),
                     (sru_torch_kernel, "sru_forward"), (sru_torch_kernel, "sru_backward")):
    setattr(module, name, forbidden)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    x = torch.randn(16, 4, 8, requires_grad=True)
    out, state = QRNN(8, 8, num_layers=1)(x)
    (out.sum() + state.c.sum()).backward()
    out, state = SRU(8, 8, num_layers=1)(x)
    (out.sum() + state.c.sum()).backward()
elapsed = time.perf_counter() - start
assert cpu_pooling._forward.cache_info().currsize >= 1 and cpu_sru._backward.cache_info().currsize >= 1
assert all(fn.signatures for fn in (cpu_pooling._forward(True, False, True, False, True, torch.float32, False),))
print("WARNINGS", len([w for w in caught if issubclass(w.category, Warning)]))
print("SECONDS %.2f" % elapsed)
print("OK")
"""


def test_fresh_environment_without_compiler_gets_numba_kernels(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python")  # PATH: the interpreter only
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path / "home"),
        "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
        "TORCH_EXTENSIONS_DIR": str(tmp_path / "torch-extensions"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CC": "false", "CXX": "false",
    }
    out = _run(FRESH, **env)
    assert "WARNINGS 0" in out, out
    assert not (tmp_path / "torch-extensions").exists()  # nothing was built with a compiler
    assert any((tmp_path / "numba-cache").rglob("*.nbi"))  # the machine code went to numba's cache
    again = _run(FRESH, **env)  # a second process loads it from the cache
    assert "WARNINGS 0" in again, again


def test_ctrl_c_during_first_use_compile_stops_at_once_and_leaves_a_usable_cache(tmp_path):
    """Issue 14, item 3: SIGINT while numba compiles (right after the one-line notice) ends the
    process within seconds (numba checks for it between its Python steps; one LLVM call may run to
    its end), and a later process on the same cache compiles or loads what is missing and runs."""
    import signal
    import time

    # as at a terminal: Python's own SIGINT handler, even if this test runs where SIGINT is ignored
    script = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n" + textwrap.dedent(FRESH)
    for delay in (0.5, 1.5):  # each on an empty cache: the four kernels take seconds to compile
        env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   NUMBA_CACHE_DIR=str(tmp_path / f"numba-cache-{delay}"))
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        notice = proc.stderr.readline()
        assert notice.startswith("quasirnn: compiling the CPU kernels on first use"), notice
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        out, err = proc.communicate(timeout=60)
        waited = time.perf_counter() - sent
        assert proc.returncode != 0 and "KeyboardInterrupt" in err, (proc.returncode, out, err)
        assert waited < 5.0, f"the process took {waited:.1f} s to stop after SIGINT"
    out = _run(FRESH, NUMBA_CACHE_DIR=env["NUMBA_CACHE_DIR"])  # the cache the last one left
    assert "WARNINGS 0" in out, out


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # ctypes' "Exception ignored"
def test_sigint_inside_a_ctypes_callback_still_stops_a_compilation():
    """numba's object cache is a ctypes callback from LLVM; a KeyboardInterrupt raised in one is
    printed and ignored by ctypes. cpu_runtime._interruptible notes it and raises it again once
    the compilation (here: the callback) returns; without it nothing is raised at all."""
    import ctypes
    import signal

    @ctypes.CFUNCTYPE(None)
    def callback():  # SIGINT lands while C code runs a Python callback, as in numba's object cache
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between bytecodes, here
            pass

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal
    try:
        callback()  # under Python's default handler: the KeyboardInterrupt is swallowed by ctypes
        with pytest.raises(KeyboardInterrupt):
            with cpu_runtime._interruptible():
                callback()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


# --------------------------------------------------------------------------- normal environment


def test_numba_available_here():
    assert cpu_runtime.available() is True


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_auto_uses_numba_kernel_for_cpu_float(monkeypatch, dtype):
    """"auto" never touches the pure-PyTorch kernel for CPU float32/float64/bfloat16."""

    def forbidden(*args, **kwargs):
        raise AssertionError("auto backend used the pure-PyTorch kernel")

    for module, name in ((pooling_torch_kernel, "pool_forward"), (pooling_torch_kernel, "pool_backward"),
                         (sru_torch_kernel, "sru_forward"), (sru_torch_kernel, "sru_backward")):
        monkeypatch.setattr(module, name, forbidden)
    f = torch.sigmoid(torch.randn(4, 2, 5, dtype=dtype)).requires_grad_()
    z = torch.randn(4, 2, 5, dtype=dtype, requires_grad=True)
    forget_mult(f, z, backend="auto").sum().backward()
    gates = torch.randn(4, 2, 15, dtype=dtype, requires_grad=True)
    h, _, c_last = qrnn_pooling(gates, None, "fo", backend="auto")
    (h.sum() + c_last.sum()).backward()
    assert f.grad is not None and gates.grad is not None
    u = torch.randn(4, 2, 20, dtype=dtype, requires_grad=True)
    v, b = torch.randn(2, 5, dtype=dtype, requires_grad=True), torch.randn(2, 5, dtype=dtype, requires_grad=True)
    h, c, c_last = sru_recurrence(u, v, b, backend="auto")
    (h.sum() + c_last.sum()).backward()
    assert u.grad is not None and v.grad is not None


def test_auto_uses_torch_kernel_for_float16(monkeypatch):
    """float16 has no numba kernel: "auto" takes the PyTorch kernel (and "cpu" refuses)."""
    calls = []
    original = pooling_torch_kernel.pool_forward

    def spy(*args, **kwargs):
        calls.append(args[0].dtype)
        return original(*args, **kwargs)

    monkeypatch.setattr(pooling_torch_kernel, "pool_forward", spy)
    f = torch.sigmoid(torch.randn(4, 2, 5)).half()
    z = torch.randn(4, 2, 5).half()
    out = forget_mult(f, z, backend="auto")
    # The 16-bit call runs the same kernel again on float32 copies, which the spy sees too.
    assert calls == [torch.float16, torch.float32]
    ref = forget_mult(f.double(), z.double(), backend="reference")
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)
    with pytest.raises(TypeError, match="backend='cpu' supports float32, float64 and bfloat16"):
        forget_mult(f, z, backend="cpu")
