"""Static checks of the GPU kernels, without a GPU: every Triton specialisation that QRNN and SRU
layers launch (f/fo/ifo pooling, with and without zoneout, float32 and bfloat16, both branches
of the time-chunk planner on a 132-multiprocessor GPU) compiles for sm_80 and sm_90 with no
register spills, and every time loop loads at least 48 bytes per thread per iteration (from the
SASS), so that many loads are in flight. ``tests/ops/triton_static_probe.py --full`` adds float16.

The probe runs once per session in a subprocess (the kernels must be real JIT functions, not the
interpreter's), compiling in parallel; see its docstring for the stand-in driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")
PROBE = Path(__file__).with_name("triton_static_probe.py")
MIN_LOOP_BYTES = 48


@pytest.fixture(scope="module")
def compiled():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _name(row):
    flags = ",".join(f"{k}={v}" for k, v in sorted(row["constexprs"].items()))
    return f"{row['kernel']}[{row['arch']}, {row['dtype']}, {flags}]"


def test_every_kernel_and_branch_is_launched(compiled):
    names = {r["kernel"] for r in compiled["results"]}
    assert names == {"fwd_kernel", "fwd_summary_kernel", "bwd_kernel", "bwd_summary_kernel",
                     "sru_fwd_kernel", "sru_bwd_kernel"}
    carry = {r["constexprs"]["HAS_CARRY"] for r in compiled["results"] if r["kernel"] == "fwd_kernel"}
    assert carry == {"True", "False"}  # the planner took both branches
    assert {r["arch"] for r in compiled["results"]} == {"sm_80", "sm_90"}
    assert {r["dtype"] for r in compiled["results"]} == {"fp32", "bf16"}
    masks = {(r["constexprs"]["HAS_I"], r["constexprs"]["HAS_O"], r["constexprs"]["HAS_MASK"])
             for r in compiled["results"] if r["kernel"] == "fwd_kernel"}
    assert len(masks) == 6  # f, fo, ifo, each with and without zoneout


def test_no_register_spills(compiled):
    spilling = [f"{_name(r)}: {r['spills']} B, {r['regs']} registers" for r in compiled["results"] if r["spills"]]
    assert not spilling, "\n".join(spilling)


def test_time_loops_keep_many_loads_in_flight(compiled):
    for row in compiled["results"]:
        assert row["loops"], f"{_name(row)}: no loop with global loads found in the SASS"
    thin = [f"{_name(r)}: {r['loops']} bytes per iteration" for r in compiled["results"]
            if min(r["loops"]) < MIN_LOOP_BYTES]
    assert not thin, "\n".join(thin)
