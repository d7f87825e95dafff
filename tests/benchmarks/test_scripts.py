"""The benchmark scripts still run and print their tables (tiny sizes; timings not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_layer_speed_prints_grid_layer_and_bandwidth_tables():
    out = _run("layer_speed.py", "--grid", "--grid-batches", "8,16", "--grid-lengths", "32", "--grid-hidden", "16",
               "--sizes", "16,2,8", "--windows", "2", "--repeat", "1", "--warmup", "0", "--bandwidth-size", "8,2,16")
    # inference grid with the paper's figure beside each cell; the forward+backward grid without
    assert re.search(r"\| 8 \| \d+\.\dx \(5\.5x\) \|", out) and re.search(r"\| 16 \| \d+\.\dx \(5\.5x\) \|", out)
    assert "Figure 4 grid, forward+backward" in out
    assert re.search(r"\| 16 \| 2 \| 8 \| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|", out)
    assert "| forget_mult forward+backward |" in out


def test_ptb_epoch_prints_both_cells(real_ptb):
    out = _run("ptb_epoch.py", "--data", str(real_ptb), "--device", "cpu", "--max-batches", "1", "--warmup", "0",
               "--emb-size", "16", "--hidden-size", "16", "--num-layers", "1", "--bptt", "10")
    rows = re.findall(r"^\| (qrnn|lstm) \| [\d.]+ M \| [\d,]+ \| [\d.]+ \| ([\d.]+) \|$", out, re.M)
    assert [cell for cell, _ in rows] == ["qrnn", "lstm"] and rows[0][1] == "1.00"


def test_packed_speed_prints_both_cells():
    out = _run("packed_speed.py", "--sizes", "16,2,8", "--repeat", "1", "--warmup", "0")
    rows = re.findall(r"^\| (qrnn|sru) \| 16 \| 2 \| 8 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    assert rows == ["qrnn", "sru"]


def test_sru_speed_prints_its_table():
    out = _run("sru_speed.py", "--sizes", "16,2,8", "9,1,5", "--repeat", "1", "--warmup", "0", "--backends", "auto",
               "torch", "--no-recurrent-gate")
    assert "| T | B | H | LSTM ms | projection ms | SRU[auto] ms | SRU[auto] / projection |" in out
    cells = r" [\d.]+ \| [\d.]+ \| [\d.]+x \|"
    assert re.search(r"^\| 16 \| 2 \| 8 \| [\d.]+ \| [\d.]+ \|" + cells * 3 + "$", out, re.M), out
    assert re.search(r"^\| 9 \| 1 \| 5 \|", out, re.M), out


def test_ddp_speed_prints_its_table(real_ptb):
    out = _run("ddp_speed.py", "--data", str(real_ptb), "--train-lines", "300", "--steps", "3", "--warmup", "1",
               "--batch-size", "2", "--emb-size", "8", "--hidden-size", "8", "--num-layers", "1", "--bptt", "5")
    assert re.search(r"^\| 1 \| [\d,]+ \| [\d,]+ \| \d+\.\d{3} \|$", out, re.M), out


def test_kernel_overhead_prints_per_call_and_first_use_tables():
    out = _run("kernel_overhead.py", "--number", "20", "--repeat", "1", "--fresh-runs", "1")
    assert re.search(r"^\| QRNN layer \(fo, window 1\) \| [\d.]+ \| [+-][\d.]+ \|$", out, re.M), out
    assert re.search(r"^\| empty \(compiles\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M), out
def test_generate_speed_prints_per_word_and_first_word_tables():
    out = _run("generate_speed.py", "--size", "16,24,2", "--vocab", "50", "--words", "5", "--warmup", "1",
               "--rounds", "1", "--runs", "1")
    rows = re.findall(r"^\| (qrnn|sru|lstm) \| (?:torch|auto|n/a \(nn.LSTM\)) \| (float32|float16) \| [\d.]+ M \| "
                      r"[\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    assert [cell for cell, _ in rows] == ["qrnn"] * 3 + ["sru"] * 3 + ["lstm"] * 2, out
    int8 = re.findall(r"^\| (qrnn|sru|lstm) \| (?:auto|n/a \(nn.LSTM\)) \| int8 \| - \| - \| - \| [\d.]+ \|$", out, re.M)
    assert int8 == ["qrnn", "sru", "lstm"], out
    firsts = re.findall(r"^\| (lm generate, [^|]+|fresh interpreter: [^|]+) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    assert len(firsts) == 4, out


def test_hf_generate_prints_per_token_and_by_length_tables():
    pytest.importorskip("transformers")
    out = _run("hf_generate.py", "--quick")
    rows = re.findall(r"^\| (1|8) \| [\d.]+ \| [\d.]+ \| [\d.]+x \|$", out, re.M)
    assert rows == ["1", "8"], out
    lengths = re.findall(r"^\| (qrnn \(quasirnn.hf\)|GPT-2 [^|]+) \| [\d.]+ M \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    assert len(lengths) == 2, out


def test_stream_step_prints_every_path_with_its_ratios():
    out = _run("stream_step.py", "--hidden", "16", "--rounds", "2", "--number", "5", "--chunk", "3")
    rows = re.findall(r"^\| 16 \| ([^|]+) \| [\d.]+ \| (?:[\d.]+x)? \| [\d.]+x \|$", out, re.M)
    assert rows == [f"{cell} {path}" for cell in ("QRNN", "SRU")
                    for path in ("module", "stepper", "stepper chunk of 3", "stepper int8", "matvec floor")] + ["nn.LSTM", "nn.LSTM oneDNN off"], out


def test_gpu_check_without_cuda_says_so_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: gpu_check would run in full")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured"]
    assert not any(tmp_path.iterdir())


def test_int8_speed_prints_fp32_and_int8_side_by_side():
    out = _run("int8_speed.py", "--quick")
    assert "| model | T | B | H | threads | fp32 ms | int8 ms | fp32 / int8 | int8 rel. error |" in out
    rows = re.findall(r"^\| (qrnn|sru|lstm) \| 16 \| 2 \| 8 \| 1 \| [\d.]+ \| [\d.]+ \| [\d.]+x \| (\S+) \|$", out, re.M)
    assert [name for name, _ in rows] == ["qrnn", "sru", "lstm"], out
    assert all(0 < float(err) < 0.1 for _, err in rows), out  # the int8 models ran, close to float32
