"""benchmarks/onnx_speed.py still runs and prints its table: eager, onnxruntime fp32 and int8 on the model
exported with its state, a full sequence and a streaming step (tiny sizes; timings not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_onnx_speed_prints_its_table():
    pytest.importorskip("onnxruntime")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "onnx_speed.py"), "--sizes", "16,2,8",
                           "--stream", "8", "--layers", "2", "--repeat", "1", "--warmup", "0"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    number, ratio, error = r"[\d.]+", r"[\d.]+x", r"[\d.]+e[+-]\d+"
    cells = rf"{number} \| {number} \| {number} \| {ratio} \| {ratio} \| ({error}) \| ({error}) \|$"
    full = re.search(rf"^\| full \(16, 2, 8\) \| ms \| {cells}", proc.stdout, re.M)
    step = re.search(rf"^\| step \(T=1, B=1, 8\) \| µs/step \| {cells}", proc.stdout, re.M)
    assert full and step, proc.stdout
    for row in (full, step):  # fp32 equals eager; int8 is near it, not equal
        fp32_error, int8_error = float(row.group(1)), float(row.group(2))
        assert fp32_error < 1e-5 and 0 < int8_error < 0.1, row.group(0)
