"""benchmarks/onnx_speed.py still runs and prints its table (tiny sizes; timings not checked)."""

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
                           "--layers", "2", "--repeat", "1", "--warmup", "0"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\| 16 \| 2 \| 8 \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d.e+-]+ \|$", proc.stdout, re.M), proc.stdout
