"""Where the numba kernels' threads come from: PyTorch's own OpenMP team against a pool of Python threads.

PyTorch's OpenMP threads spin for a while after each op before they sleep. A kernel on threads of
its own then shares the cores with spinning threads; on PyTorch's team (``GOMP_parallel``, what
``ops/_cpu/runtime.run_items`` does where PyTorch runs on OpenMP) it does not. This times one QRNN
and one SRU layer, forward+backward, both ways round-robin in one process (the pool by setting
``cpu_runtime._openmp_parallel = False``), beside the gate projection alone (an ``nn.Linear``).

Usage:
    python benchmarks/cpu_threads.py                 # the sizes of issue 14, 2 threads
    python benchmarks/cpu_threads.py --sizes 512,8,320 --repeat 15
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import quasirnn
from quasirnn.ops._cpu import runtime as cpu_runtime


def fwd_bwd(module, x):
    def step():
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        out.backward(torch.ones_like(out))

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["512,8,320", "256,16,512", "64,32,256"], metavar="T,B,H")
    p.add_argument("--repeat", type=int, default=9, help="timed rounds (median)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    openmp = cpu_runtime.openmp_parallel()  # found once: switching back must not search again
    if openmp is None:
        raise SystemExit("PyTorch does not run on OpenMP here: there is only the Python pool to time")
    print(f"torch {torch.__version__}, threads {args.threads}, median of {args.repeat} rounds, float32, "
          "one layer, forward+backward, window 1\n")
    print("| T | B | H | gates ms | QRNN team ms | QRNN pool ms | QRNN team / gates | QRNN pool / gates "
          "| SRU team ms | SRU pool ms | SRU team / gates | SRU pool / gates |")
    print("|" + "---|" * 12)
    for size in args.sizes:
        T, B, H = (int(v) for v in size.split(","))
        torch.manual_seed(0)
        x = torch.randn(T, B, H)
        cells = {"gates": fwd_bwd(nn.Linear(H, 3 * H), x), "qrnn": fwd_bwd(quasirnn.QRNN(H, H), x),
                 "sru": fwd_bwd(quasirnn.SRU(H, H), x)}
        times = {}
        for _ in range(args.repeat + 2):  # the first two rounds warm up
            for team in ("team", "pool"):
                cpu_runtime._openmp_parallel = openmp if team == "team" else False
                for name, fn in cells.items():
                    t0 = time.perf_counter()
                    fn()
                    times.setdefault((name, team), []).append((time.perf_counter() - t0) * 1e3)
        cpu_runtime._openmp_parallel = openmp
        ms = {k: statistics.median(v[2:]) for k, v in times.items()}
        g = statistics.median(times["gates", "team"][2:] + times["gates", "pool"][2:])
        print(f"| {T} | {B} | {H} | {g:.2f} | {ms['qrnn', 'team']:.2f} | {ms['qrnn', 'pool']:.2f} | "
              f"{ms['qrnn', 'team'] / g:.2f} | {ms['qrnn', 'pool'] / g:.2f} | {ms['sru', 'team']:.2f} | "
              f"{ms['sru', 'pool']:.2f} | {ms['sru', 'team'] / g:.2f} | {ms['sru', 'pool'] / g:.2f} |")


if __name__ == "__main__":
    main()
