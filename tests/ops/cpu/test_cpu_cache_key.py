"""numba's disk cache must not hand out kernels built for other constants.

numba keys a cached kernel on its source file, its bytecode and its closure, not on the module
globals it reads (those are frozen into the machine code). So each kernel module lists the
constants its kernels read (``SALTED``) and puts a hash of them and of ``cpu_math.py`` in every
kernel's closure (``SALT_``)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import quasirnn
from quasirnn.ops.pooling import cpu_kernel as cpu_pooling
from quasirnn.ops.sru import cpu_kernel as cpu_sru
from quasirnn.ops._cpu import intrinsics as cpu_math

SRC = str(Path(quasirnn.__file__).resolve().parents[1])

KERNELS = [
    (cpu_pooling, lambda: cpu_pooling._forward(True, False, True, False, True, torch.float32, False)),
    (cpu_pooling, lambda: cpu_pooling._backward(True, True, True, True, True, True, True, torch.float32)),
    (cpu_sru, lambda: cpu_sru._forward(True, torch.float32)),
    (cpu_sru, lambda: cpu_sru._backward(True, True, True, True, torch.float32)),
]


@pytest.mark.parametrize("module, make", KERNELS, ids=["pool-forward", "pool-backward", "sru-forward", "sru-backward"])
def test_every_module_constant_a_kernel_reads_is_salted(module, make):
    fn = make().py_func
    constants = {name for name in fn.__code__.co_names
                 if isinstance(module.__dict__.get(name), (int, float, bool))}
    assert constants, "the kernel reads no module constant: the test looks at the wrong code"
    assert constants <= set(module.SALTED), f"not in {module.__name__}.SALTED: {constants - set(module.SALTED)}"
    assert inspect.getclosurevars(fn).nonlocals["SALT_"] == module.SALT
    assert module.SALT == cpu_math.salt(*(getattr(module, name) for name in module.SALTED))


def test_the_salt_changes_with_each_constant():
    base = (256, 16, 8, 1 << 40)
    salts = {cpu_math.salt(*base)}
    for k in range(len(base)):
        salts.add(cpu_math.salt(*(v + 1 if j == k else v for j, v in enumerate(base))))
    assert len(salts) == len(base) + 1


RUN = """
import sys, torch
from quasirnn.ops._cpu import runtime as cpu_runtime
cpu_runtime.BLOCK = int(sys.argv[1])
from quasirnn.ops import forget_mult
from quasirnn.ops.pooling import cpu_kernel as cpu_pooling
assert cpu_pooling.BLOCK == cpu_runtime.BLOCK
torch.manual_seed(0)
f, z = torch.rand(6, 3, 300, dtype=torch.float64), torch.randn(6, 3, 300, dtype=torch.float64)
torch.testing.assert_close(forget_mult(f, z, backend="auto"), forget_mult(f, z, backend="reference"))
"""


def test_a_changed_block_size_compiles_afresh_instead_of_loading_the_old_kernel(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run(block: int) -> str:
        proc = subprocess.run([sys.executable, "-c", RUN, str(block)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert "compiling the CPU kernels" in run(256)
    assert "compiling the CPU kernels" not in run(256)  # loaded from the cache
    assert "compiling the CPU kernels" in run(128)  # not the kernel built for 256 channels per block
