"""The numba kernels' inner loops are vectorised by LLVM: each activation's division appears as
a packed instruction (divps) in the machine code, in 512-bit registers on a CPU with AVX-512. A
scalar or narrower loop is slower and still correct, so only this test notices it (the SRU
backward with dx was scalar until its dv/db sums got a loop of their own; LLVM used 256-bit
vectors on Intel's AVX-512 CPUs until the kernels asked for 512)."""

from __future__ import annotations

import platform
import re

import pytest
import torch
from llvmlite import binding as llvm
from numba import njit

from quasirnn.ops import qrnn_pooling, sru_recurrence
from quasirnn.ops.pooling import cpu_kernel as cpu_pooling
from quasirnn.ops.sru import cpu_kernel as cpu_sru
from quasirnn.ops._cpu import intrinsics as cpu_math
from quasirnn.ops._cpu.intrinsics import span

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="reads x86-64 machine code")


def _asm(kernel) -> str:
    """Machine code of ``kernel`` compiled afresh (numba does not show that of cached code)."""
    (sig,) = kernel.signatures
    fresh = njit(cache=False, **cpu_math.KERNEL_OPTIONS)(kernel.py_func)
    fresh.compile(sig)
    return fresh.inspect_asm(sig)


def _run_layer_kernels():
    torch.manual_seed(0)
    gates = torch.randn(6, 2, 3 * 40, requires_grad=True)
    h, _, _ = qrnn_pooling(gates, pooling="fo", bias=torch.randn(3 * 40, requires_grad=True), backend="cpu")
    h.sum().backward()
    u = torch.randn(6, 2, 3 * 40, requires_grad=True)
    x = torch.randn(6, 2, 40, requires_grad=True)  # dx too: the widest backward
    v, b = torch.randn(2, 40, requires_grad=True), torch.randn(2, 40, requires_grad=True)
    h, _, _ = sru_recurrence(u, v, b, x=x, backend="cpu")
    h.sum().backward()


KERNELS = {
    "pooling forward": lambda: cpu_pooling._forward(True, False, True, False, True, torch.float32, False),
    "pooling backward": lambda: cpu_pooling._backward(True, False, True, False, True, False, False, torch.float32),
    "SRU forward": lambda: cpu_sru._forward(False, torch.float32),
    "SRU backward": lambda: cpu_sru._backward(False, False, False, True, torch.float32),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_the_time_loop_body_is_vectorised(name):
    _run_layer_kernels()
    asm = _asm(KERNELS[name]())
    assert re.search(r"\bv?divps\b", asm), f"the {name} kernel's loop is not vectorised (no packed division)"


@pytest.mark.skipif(not llvm.get_host_cpu_features().get("avx512f", False), reason="needs AVX-512")
@pytest.mark.parametrize("name", list(KERNELS))
def test_avx512_cpus_get_512_bit_vectors(name):
    _run_layer_kernels()
    asm = _asm(KERNELS[name]())
    assert re.search(r"\bvdivps\s+%zmm", asm), f"the {name} kernel's divisions are not in 512-bit registers"


def test_span_is_the_slice_it_replaces_and_shares_memory():
    @njit(cache=False)
    def write_through(a, start, count):
        v = span(a, start, count)
        for j in range(v.shape[0]):
            v[j] = -v[j]
        return v.sum()

    import numpy as np

    a = np.arange(1.0, 11.0, dtype=np.float32)
    expected = -a[3:7].sum()
    assert write_through(a, 3, 4) == expected
    np.testing.assert_array_equal(a, [1, 2, 3, -4, -5, -6, -7, 8, 9, 10])


def test_span_refuses_what_is_not_a_1d_contiguous_array():
    import numpy as np
    from numba.core.errors import TypingError

    @njit(cache=False)
    def strided(a):
        return span(a[::2], 0, 2).sum()

    with pytest.raises((TypingError, TypeError), match="1-D C-contiguous"):
        strided(np.zeros(8, np.float32))
