"""How the numba kernels split their work over threads (ops/_cpu/runtime.run_items): on PyTorch's
own OpenMP team where PyTorch runs on OpenMP, else on a pool of Python threads; the same values
either way, and an error inside a thread reaches the caller."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from quasirnn.ops import forget_mult, forget_mult_reference, qrnn_pooling, qrnn_pooling_reference
from quasirnn.ops._cpu import runtime as cpu_runtime

# 2 threads need at least 2 * MIN_WORK_PER_THREAD element-steps
SHAPE = (64, 8, 512)


def _openmp_torch() -> bool:
    return sys.platform.startswith("linux") and "parallel backend: OpenMP" in torch.__config__.parallel_info()


@pytest.fixture(params=["openmp", "python pool"])
def team(request, monkeypatch):
    """Two threads, on PyTorch's OpenMP team or (the runtime forced off) on the Python pool."""
    if request.param == "openmp" and cpu_runtime.openmp_parallel() is None:
        pytest.skip("no OpenMP runtime here")
    if request.param == "python pool":
        monkeypatch.setattr(cpu_runtime, "_openmp_parallel", False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.skipif(not _openmp_torch(), reason="PyTorch does not run on OpenMP here")
def test_the_openmp_runtime_of_pytorch_is_found():
    assert cpu_runtime.openmp_parallel() is not None


def test_both_ways_of_threading_give_the_reference_values(team, monkeypatch):
    called = []
    real = cpu_runtime.openmp_parallel
    monkeypatch.setattr(cpu_runtime, "openmp_parallel", lambda: called.append(1) or real())
    torch.manual_seed(0)
    f = torch.rand(*SHAPE, dtype=torch.float64, requires_grad=True)
    z = torch.randn(*SHAPE, dtype=torch.float64, requires_grad=True)
    c = forget_mult(f, z, backend="cpu")
    assert called, "the work was not split over threads"
    ref = forget_mult_reference(f, z)
    grad = torch.randn_like(c)
    got = torch.autograd.grad(c, (f, z), grad)
    want = torch.autograd.grad(ref, (f, z), grad)
    torch.testing.assert_close(c, ref)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    gates = torch.randn(SHAPE[0], SHAPE[1], 3 * SHAPE[2])
    h, _, c_last = qrnn_pooling(gates, pooling="fo", backend="cpu")
    h_ref, c_ref = qrnn_pooling_reference(gates, None, "fo", None)
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c_last, c_ref[-1], rtol=1e-5, atol=1e-5)


def test_an_error_in_a_thread_reaches_the_caller(team, monkeypatch):

    def failing(*args):
        raise ValueError("raised inside the kernel")

    monkeypatch.setattr(cpu_runtime, "_ready", {failing})
    with pytest.raises(ValueError, match="raised inside the kernel"):
        cpu_runtime.run_items(failing, (), 1024, 8, 1024, "test")
    assert not cpu_runtime._jobs  # nothing left behind


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork here")
def test_a_forked_child_runs_the_kernels_on_threads_of_its_own():
    # libgomp hangs when its team is used after a fork (PyTorch's own ops do, here); the kernels
    # must not: in the child they start a pool of their own
    script = textwrap.dedent("""
        import os, torch
        torch.set_num_threads(2)
        from quasirnn.ops import forget_mult
        f, z = torch.rand(64, 8, 512), torch.randn(64, 8, 512)
        before = forget_mult(f, z)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if (forget_mult(f, z).numpy() == before.numpy()).all() else 3)  # numpy: no OpenMP
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0"
