"""Fixed costs of the CPU kernels: per-call overhead and the first use in a fresh process.

1. Per call: one layer's inference at a tiny size, where nothing but Python and dispatch is left:
   ``QRNN(H, H, num_layers=1)`` and ``SRU(H, H, num_layers=1)`` against an ``nn.Linear(H, 3H)``
   (the QRNN's own gate projection at window 1), timed round-robin in one process under
   ``torch.no_grad()``; the goal of issue 14 is QRNN ≤ Linear + 25 µs at (T, B, H) = (1, 1, 16).
2. First use: a fresh interpreter imports quasirnn and runs one QRNN and one SRU layer forward
   and backward, with an empty numba cache (everything compiled) and again with the cache it
   left (everything loaded); wall-clock seconds from the interpreter's start.

Usage:
    python benchmarks/kernel_overhead.py                  # (1, 1, 16), 5 fresh processes each
    python benchmarks/kernel_overhead.py --size 1,8,320 --fresh-runs 3
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

import torch

FIRST_USE = """
import time
start = time.perf_counter()
import torch
from quasirnn import QRNN, SRU
x = torch.randn(16, 4, 8, requires_grad=True)
for cls in (QRNN, SRU):
    out, state = cls(8, 8, num_layers=1)(x)
    (out.sum() + state.c.sum()).backward()
print(time.perf_counter() - start)
"""


def per_call(T: int, B: int, H: int, number: int, repeat: int) -> list[tuple[str, float]]:
    from quasirnn import QRNN, SRU

    x = torch.randn(T, B, H)
    cells = {
        "nn.Linear(H, 3H)": torch.nn.Linear(H, 3 * H),
        "QRNN layer (fo, window 1)": QRNN(H, H, num_layers=1).eval(),
        "SRU layer": SRU(H, H, num_layers=1).eval(),
    }
    times = {name: [] for name in cells}
    with torch.no_grad():
        for module in cells.values():
            module(x)  # compile / load the kernels
        for _ in range(repeat):
            for name, module in cells.items():
                times[name].append(min(timeit.repeat(lambda: module(x), number=number, repeat=3)) / number)
    return [(name, statistics.median(t) * 1e6) for name, t in times.items()]


def first_use(runs: int) -> tuple[list[float], list[float]]:
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            for bucket in (cold, warm):
                out = subprocess.run([sys.executable, "-c", FIRST_USE], env=env, capture_output=True, text=True,
                                     check=True)
                bucket.append(float(out.stdout.strip().splitlines()[-1]))
    return cold, warm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="1,1,16", help="T,B,H of the per-call table")
    p.add_argument("--number", type=int, default=2000, help="calls per timing")
    p.add_argument("--repeat", type=int, default=5, help="round-robin rounds (median)")
    p.add_argument("--fresh-runs", type=int, default=5, help="fresh processes per cache state (0 skips)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the per-call table")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    T, B, H = (int(v) for v in args.size.split(","))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {time.strftime('%Y-%m-%d')}\n")
    rows = per_call(T, B, H, args.number, args.repeat)
    base = rows[0][1]
    print(f"Per-call inference at (T, B, H) = ({T}, {B}, {H}), median of {args.repeat} rounds\n")
    print("| module | µs per call | µs over the Linear |")
    print("|---|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} | {us - base:+.1f} |")
    if args.fresh_runs:
        cold, warm = first_use(args.fresh_runs)
        print(f"\nFresh process to its first QRNN + SRU forward+backward (seconds, {args.fresh_runs} runs)\n")
        print("| numba cache | min | median | max |")
        print("|---|---|---|---|")
        for name, values in (("empty (compiles)", cold), ("filled by the previous run", warm)):
            print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
