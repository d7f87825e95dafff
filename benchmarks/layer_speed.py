"""Speed of one QRNN layer against torch.nn.LSTM and against its own gate projection.

For each (T, B, H) and window k, times forward+backward of
  * ``torch.nn.LSTM(H, H)``,
  * ``quasirnn.QRNN(H, H, window=k)`` (fo-pooling),
  * the QRNN's gate projection alone — ``nn.Linear(k*H, 3H)`` on the already-windowed input —
    which is the floor: a QRNN cannot be faster than its own matrix product,
all in one run, side by side, so the ratios are fair. Then the pooling kernel's achieved memory
bandwidth (``forget_mult`` forward, and forward+backward) against a plain tensor copy of the
same bytes (a device-to-device copy on a GPU).

With ``--grid`` (the default on CUDA) it also times the paper's Figure 4: one layer, H = 320,
batch × sequence length, inference (``torch.no_grad``), QRNN against ``nn.LSTM`` (cuDNN on a
GPU), next to the paper's speed-ups, and the same grid for forward+backward.

Usage:
    python benchmarks/layer_speed.py                 # the CPU sizes of BENCHMARKS.md
    python benchmarks/layer_speed.py --sizes 512,8,320 --windows 1 --repeat 30
    python benchmarks/layer_speed.py --device cuda   # Figure 4 grid, layer table, bandwidth
Prints markdown tables. Medians of ``--repeat`` timed runs after ``--warmup`` runs, the
compared callables timed round-robin; on CUDA each run is timed with CUDA events.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import quasirnn
from quasirnn.ops import forget_mult


# Speed-up of a 320-unit QRNN layer over an equal-sized cuDNN LSTM layer, inference, from the
# paper's Figure 4 (right; Bradbury et al. 2016, arXiv 1611.01576): {batch: {length: speed-up}}.
PAPER_FIG4 = {
    8: {32: 5.5, 64: 8.8, 128: 11.0, 256: 12.4, 512: 16.9},
    16: {32: 5.5, 64: 6.7, 128: 7.8, 256: 8.3, 512: 10.8},
    32: {32: 4.2, 64: 4.5, 128: 4.9, 256: 4.9, 512: 6.4},
    64: {32: 3.0, 64: 3.0, 128: 3.0, 256: 3.0, 512: 3.7},
    128: {32: 2.1, 64: 1.9, 128: 2.0, 256: 2.0, 512: 2.4},
    256: {32: 1.4, 64: 1.4, 128: 1.3, 256: 1.3, 512: 1.3},
}


def interleaved_medians(fns: dict, warmup: int, repeat: int, device: torch.device) -> dict:
    """Median time (ms) of each callable, timed round-robin so that drifts in machine speed
    (other tenants, clocks) hit every column alike and the ratios stay fair. CPU: wall clock;
    CUDA: CUDA events around each call (after a synchronize, so queues start empty)."""
    cuda = device.type == "cuda"
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    if cuda:
        torch.cuda.synchronize(device)
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times[name].append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def fwd_bwd(module, x):
    def step():
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        out.backward(torch.ones_like(out))  # same upstream cost for every model

    return step


def inference(module, x):
    def step():
        with torch.no_grad():
            module(x)

    return step


def make_qrnn(H, k, backend, device):
    qrnn = quasirnn.QRNN(H, H, window=k, pooling="fo").to(device)
    for layer in qrnn.layers:
        layer.backend = backend
    return qrnn


def layer_rows(sizes, windows, device, warmup, repeat, backends):
    rows = []
    for T, B, H in sizes:
        torch.manual_seed(0)
        x = torch.randn(T, B, H, device=device)
        fns = {"lstm": fwd_bwd(nn.LSTM(H, H).to(device), x)}
        for k in windows:
            for backend in backends:
                fns[k, backend] = fwd_bwd(make_qrnn(H, k, backend, device), x)
            windowed = torch.randn(T, B, k * H, device=device)
            fns[k, "gates"] = fwd_bwd(nn.Linear(k * H, 3 * H).to(device), windowed)
        t = interleaved_medians(fns, warmup, repeat, device)
        for k in windows:
            rows.append((T, B, H, k, t["lstm"], {b: t[k, b] for b in backends}, t[k, "gates"]))
    return rows


def grid_rows(batches, lengths, H, k, backend, device, warmup, repeat, mode):
    """Figure 4: {(B, T): (LSTM ms, QRNN ms)} for one layer of H units, ``mode`` "inference"
    (no autograd) or "train" (forward+backward)."""
    rows = {}
    timed = inference if mode == "inference" else fwd_bwd
    for B in batches:
        for T in lengths:
            torch.manual_seed(0)
            x = torch.randn(T, B, H, device=device)
            t = interleaved_medians(
                {"lstm": timed(nn.LSTM(H, H).to(device), x), "qrnn": timed(make_qrnn(H, k, backend, device), x)},
                warmup, repeat, device,
            )
            rows[B, T] = (t["lstm"], t["qrnn"])
    return rows


def print_grid(rows, batches, lengths, title, with_paper):
    print(f"\n{title}\n")
    print("| batch \\ length | " + " | ".join(str(T) for T in lengths) + " |")
    print("|---|" + "---|" * len(lengths))
    for B in batches:
        cells = []
        for T in lengths:
            lstm, qrnn = rows[B, T]
            paper = PAPER_FIG4.get(B, {}).get(T)
            cell = f"{lstm / qrnn:.1f}x"
            if with_paper and paper is not None:
                cell += f" ({paper}x)"
            cells.append(cell)
        print(f"| {B} | " + " | ".join(cells) + " |")


def bandwidth_rows(T, B, H, device, warmup, repeat):
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
        warmup, repeat, device,
    )
    t_fwd, t_fb, t_copy, t_clone = t["fwd"], t["fwd_bwd"], t["copy"], t["clone"]
    bw = lambda nbytes, ms: nbytes / ms / 1e6  # GB/s
    copy_bw = bw(9 * n, t_copy)
    return [
        (f"copy_ of the same bytes into a preallocated tensor{' (device to device)' if device.type == 'cuda' else ''}",
         9 * n, t_copy, copy_bw, 1.0),
        ("clone() of the same bytes (allocates, like the op)", 9 * n, t_clone, bw(9 * n, t_clone),
         bw(9 * n, t_clone) / copy_bw),
        ("forget_mult forward", 3 * n, t_fwd, bw(3 * n, t_fwd), bw(3 * n, t_fwd) / copy_bw),
        ("forget_mult forward+backward", 9 * n, t_fb, bw(9 * n, t_fb), bw(9 * n, t_fb) / copy_bw),
    ]


def add_process_options(p: argparse.ArgumentParser) -> None:
    """--threads and --keep-freed-memory, shared with the other benchmark scripts."""
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="glibc malloc keeps freed pages (as `quasirnn lm train` does), so large outputs "
                        "are not page-faulted afresh on every call; applies to every column alike")


def apply_process_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Applies the options of :func:`add_process_options` to this process."""
    if args.keep_freed_memory:
        from quasirnn.training.device import keep_freed_memory

        if not keep_freed_memory():
            p.error("--keep-freed-memory needs Linux with glibc")
    if args.threads:
        torch.set_num_threads(args.threads)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["512,8,320", "256,16,512", "64,32,256"],
                   help="T,B,H triples for the layer table (none: skip it)")
    p.add_argument("--windows", nargs="+", type=int, default=[1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default: 3 on CPU, 10 on CUDA)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default: 15 on CPU, 100 on CUDA)")
    p.add_argument("--backends", nargs="+", default=["auto"], help="pooling backends to time, e.g. auto torch")
    p.add_argument("--grid", action=argparse.BooleanOptionalAction, default=None,
                   help="the paper's Figure 4 grid (default: on for CUDA, off on CPU)")
    p.add_argument("--grid-batches", type=_ints, default=[8, 16, 32, 64, 128, 256], metavar="B,B,...")
    p.add_argument("--grid-lengths", type=_ints, default=[32, 64, 128, 256, 512], metavar="T,T,...")
    p.add_argument("--grid-hidden", type=int, default=320)
    p.add_argument("--bandwidth-size", default=None,
                   help="T,B,H for the pooling bandwidth table (default: 512,32,512 on CPU, 1024,64,1024 on "
                        "CUDA, far beyond its L2 cache; 'none' skips it)")
    add_process_options(p)
    args = p.parse_args()
    apply_process_options(p, args)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 3)
    repeat = args.repeat if args.repeat is not None else (100 if cuda else 15)
    grid = args.grid if args.grid is not None else cuda
    sizes = [tuple(_ints(s)) for s in args.sizes if s != "none"]
    bandwidth = args.bandwidth_size or ("1024,64,1024" if cuda else "512,32,512")

    where = torch.cuda.get_device_name(device) if cuda else f"threads {torch.get_num_threads()}"
    print(f"torch {torch.__version__}, device {device} ({where}), median of {repeat} runs after {warmup} "
          f"warm-up, float32, malloc keeps freed memory: {args.keep_freed_memory}")
    if grid:
        for k in args.windows:
            for mode, what in (("inference", "inference (no autograd)"), ("train", "forward+backward")):
                rows = grid_rows(args.grid_batches, args.grid_lengths, args.grid_hidden, k, args.backends[0],
                                 device, warmup, repeat, mode)
                print_grid(rows, args.grid_batches, args.grid_lengths,
                           f"Figure 4 grid, {what}: LSTM time / QRNN time, one layer, H={args.grid_hidden}, "
                           f"window {k}, QRNN[{args.backends[0]}]" + (" (paper's speed-up in brackets)"
                                                                      if mode == "inference" else ""),
                           with_paper=mode == "inference")

    if sizes:
        print("\nOne layer, forward+backward\n")
        rows = layer_rows(sizes, args.windows, device, warmup, repeat, args.backends)
        head = "| T | B | H | k | LSTM ms | gates-only ms |"
        head += "".join(f" QRNN[{b}] ms | QRNN[{b}] / gates | LSTM / QRNN[{b}] |" for b in args.backends)
        print(head)
        print("|" + "---|" * (6 + 3 * len(args.backends)))
        for T, B, H, k, t_lstm, times, t_gates in rows:
            line = f"| {T} | {B} | {H} | {k} | {t_lstm:.2f} | {t_gates:.2f} |"
            for b in args.backends:
                line += f" {times[b]:.2f} | {times[b] / t_gates:.2f} | {t_lstm / times[b]:.2f}x |"
            print(line)

    if bandwidth != "none":
        T, B, H = _ints(bandwidth)
        print(f"\nPooling kernel bandwidth at T={T}, B={B}, H={H}, float32\n")
        print("| what | bytes moved (MB) | ms | GB/s | fraction of copy |")
        print("|---|---|---|---|---|")
        for name, nbytes, ms, gbs, frac in bandwidth_rows(T, B, H, device, warmup, repeat):
            print(f"| {name} | {nbytes / 1e6:.0f} | {ms:.3f} | {gbs:.1f} | {frac:.2f} |")


if __name__ == "__main__":
    main()
