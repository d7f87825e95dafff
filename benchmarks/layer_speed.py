"""Speed of one QRNN layer against torch.nn.LSTM and against its own gate projection.

For each (T, B, H) and window k, times forward+backward of
  * ``torch.nn.LSTM(H, H)``,
  * ``quasirnn.QRNN(H, H, window=k)`` (fo-pooling),
  * the QRNN's gate projection alone — ``nn.Linear(k*H, 3H)`` on the already-windowed input —
    which is the floor: a QRNN cannot be faster than its own matrix product,
all in one run, side by side, so the ratios are fair. Then the pooling kernel's achieved memory
bandwidth (``forget_mult`` forward+backward) against a plain tensor copy of the same bytes.

Usage:
    python benchmarks/layer_speed.py                 # the sizes of BENCHMARKS.md
    python benchmarks/layer_speed.py --sizes 512,8,320 --windows 1 --repeat 30
Prints markdown tables. Medians of ``--repeat`` timed runs after ``--warmup`` runs, the
compared callables timed round-robin.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import quasirnn
from quasirnn.ops import forget_mult


def interleaved_medians(fns: dict, warmup: int, repeat: int, sync=lambda: None) -> dict:
    """Median wall time (ms) of each callable, timed round-robin so that drifts in machine
    speed (other tenants, frequency changes) hit every column alike and the ratios stay fair."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def fwd_bwd(module, x):
    def step():
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        out.backward(torch.ones_like(out))  # same upstream cost for every model

    return step


def layer_rows(sizes, windows, device, warmup, repeat, backends, sync):
    rows = []
    for T, B, H in sizes:
        torch.manual_seed(0)
        x = torch.randn(T, B, H, device=device)
        fns = {"lstm": fwd_bwd(nn.LSTM(H, H).to(device), x)}
        for k in windows:
            for backend in backends:
                qrnn = quasirnn.QRNN(H, H, window=k, pooling="fo").to(device)
                for layer in qrnn.layers:
                    layer.backend = backend
                fns[k, backend] = fwd_bwd(qrnn, x)
            windowed = torch.randn(T, B, k * H, device=device)
            fns[k, "gates"] = fwd_bwd(nn.Linear(k * H, 3 * H).to(device), windowed)
        t = interleaved_medians(fns, warmup, repeat, sync)
        for k in windows:
            rows.append((T, B, H, k, t["lstm"], {b: t[k, b] for b in backends}, t[k, "gates"]))
    return rows


def bandwidth_rows(T, B, H, device, warmup, repeat, sync):
    torch.manual_seed(0)
    f = torch.rand(T, B, H, device=device).requires_grad_()
    z = torch.randn(T, B, H, device=device).requires_grad_()
    grad = torch.randn(T, B, H, device=device)
    n = T * B * H * 4  # bytes in one float32 (T, B, H) tensor

    def pool_fwd():
        with torch.no_grad():
            forget_mult(f, z)

    def pool_fwd_bwd():
        c = forget_mult(f, z)
        torch.autograd.grad(c, (f, z), grad)

    # Forward reads f, z and writes c (3 tensors); backward reads grad, f, z, c and writes df, dz (6).
    # A copy of 4.5 tensors' worth of bytes reads 4.5 and writes 4.5: the same 9 tensors moved.
    src = torch.randn(9 * n // 16, device=device, dtype=torch.float64)
    dst = torch.empty_like(src)
    t = interleaved_medians(
        {
            "fwd": pool_fwd,
            "fwd_bwd": pool_fwd_bwd,
            "copy": lambda: dst.copy_(src),
            # The op allocates its outputs, as every PyTorch op does; so does clone().
            "clone": lambda: src.clone(),
        },
        warmup, repeat, sync,
    )
    t_fwd, t_fb, t_copy, t_clone = t["fwd"], t["fwd_bwd"], t["copy"], t["clone"]
    bw = lambda nbytes, ms: nbytes / ms / 1e6  # GB/s
    copy_bw = bw(9 * n, t_copy)
    return [
        ("copy_ of the same bytes into a preallocated tensor", 9 * n, t_copy, copy_bw, 1.0),
        ("clone() of the same bytes (allocates, like the op)", 9 * n, t_clone, bw(9 * n, t_clone),
         bw(9 * n, t_clone) / copy_bw),
        ("forget_mult forward", 3 * n, t_fwd, bw(3 * n, t_fwd), bw(3 * n, t_fwd) / copy_bw),
        ("forget_mult forward+backward", 9 * n, t_fb, bw(9 * n, t_fb), bw(9 * n, t_fb) / copy_bw),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["512,8,320", "256,16,512", "64,32,256"], help="T,B,H triples")
    p.add_argument("--windows", nargs="+", type=int, default=[1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--backends", nargs="+", default=["auto"], help="pooling backends to time, e.g. auto torch")
    p.add_argument("--bandwidth-size", default="512,32,512", help="T,B,H for the pooling bandwidth table")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="glibc malloc keeps freed pages (as `quasirnn lm train` does), so large outputs "
                        "are not page-faulted afresh on every call; applies to every column alike")
    args = p.parse_args()
    if args.keep_freed_memory:
        from quasirnn.cli.lm import keep_freed_memory

        if not keep_freed_memory():
            p.error("--keep-freed-memory needs Linux with glibc")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"median of {args.repeat} runs, forward+backward, float32, "
          f"malloc keeps freed memory: {args.keep_freed_memory}\n")
    rows = layer_rows(sizes, args.windows, device, args.warmup, args.repeat, args.backends, sync)
    head = "| T | B | H | k | LSTM ms | gates-only ms |"
    head += "".join(f" QRNN[{b}] ms | QRNN[{b}] / gates | LSTM / QRNN[{b}] |" for b in args.backends)
    print(head)
    print("|" + "---|" * (6 + 3 * len(args.backends)))
    for T, B, H, k, t_lstm, times, t_gates in rows:
        line = f"| {T} | {B} | {H} | {k} | {t_lstm:.1f} | {t_gates:.1f} |"
        for b in args.backends:
            line += f" {times[b]:.1f} | {times[b] / t_gates:.2f} | {t_lstm / times[b]:.2f}x |"
        print(line)

    T, B, H = (int(v) for v in args.bandwidth_size.split(","))
    print(f"\nPooling kernel bandwidth at T={T}, B={B}, H={H}, float32\n")
    print("| what | bytes moved (MB) | ms | GB/s | fraction of copy |")
    print("|---|---|---|---|---|")
    for name, nbytes, ms, gbs, frac in bandwidth_rows(T, B, H, device, args.warmup, args.repeat, sync):
        print(f"| {name} | {nbytes / 1e6:.0f} | {ms:.2f} | {gbs:.1f} | {frac:.2f} |")


if __name__ == "__main__":
    main()
