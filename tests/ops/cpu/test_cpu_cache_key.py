"""numba's disk cache must not hand out kernels built for other constants or other steps.

numba keys a cached kernel on its source file (``_cpu/time_loop.py``, where the one time loop of
every kernel is written), its bytecode and its closure, not on the module globals it reads (those
are frozen into the machine code) nor on the steps compiled into it from the op's kernel module.
So ``time_loop`` and each kernel module list the constants their code reads (``SALTED``), and
every kernel's closure holds a hash (``SALT_``) of them, of ``_cpu/intrinsics.py``, of
``time_loop.py`` and of the kernel module's source."""

from __future__ import annotations

import hashlib
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
from quasirnn.ops._cpu import time_loop

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
    closure = inspect.getclosurevars(fn).nonlocals
    step = time_loop._STEPS[closure["NAME"]](*closure["FLAGS"])  # the step compiled into the kernel
    for code, owner in ((fn, time_loop), (step, module)):  # the loop's constants, the step's constants
        constants = {name for name in code.__code__.co_names
                     if isinstance(owner.__dict__.get(name), (int, float, bool))}
        assert constants, "the kernel reads no module constant: the test looks at the wrong code"
        assert constants <= set(owner.SALTED), f"not in {owner.__name__}.SALTED: {constants - set(owner.SALTED)}"
    assert closure["SALT_"] == module.SALT
    assert module.SALT == time_loop.salt(module.__file__, *(getattr(module, name) for name in module.SALTED))


def test_the_salt_covers_the_loop_and_the_step_sources(tmp_path):
    constants = [getattr(cpu_pooling, name) for name in cpu_pooling.SALTED]
    copy = tmp_path / "cpu_kernel.py"
    copy.write_text(Path(cpu_pooling.__file__).read_text() + "\n# an edit\n")
    assert time_loop.salt(str(copy), *constants) != cpu_pooling.SALT
    assert time_loop.salt(cpu_pooling.__file__, *constants) == cpu_pooling.SALT
    assert time_loop.LOOP_VERSION == int(hashlib.sha1(Path(time_loop.__file__).read_bytes()).hexdigest()[:12], 16)


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
from quasirnn.ops._cpu import time_loop
assert time_loop.BLOCK == cpu_runtime.BLOCK
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
