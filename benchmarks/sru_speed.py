"""Speed of one SRU layer against its own projection alone and against torch.nn.LSTM.

For each (T, B, H), times forward+backward of
  * ``torch.nn.LSTM(H, H)``,
  * the SRU's projection alone — ``nn.Linear(H, 3H, bias=False)`` on the same input — which is
    the floor: an SRU layer cannot be faster than its own matrix product,
  * ``quasirnn.SRU(H, H, num_layers=1)`` (recurrent gates, g = identity: the ``sru`` package's
    defaults) with each of ``--backends`` ("auto" = the fused numba kernel on CPU, "torch" = the
    pure-PyTorch fallback kernel),
  * with ``--no-recurrent-gate`` also ``SRU(..., recurrent_gate=False)`` (gates without the
    v ⊙ c_{t−1} terms, running on the QRNN ``forget_mult`` kernel),
all in one run, timed round-robin (the timing helper of ``layer_speed.py``), so the ratios are
fair on a loaded machine. The input does not require grad (as in ``layer_speed.py``); the
upstream gradient is a tensor of ones.

Usage:
    PYTHONPATH=src python benchmarks/sru_speed.py --threads 2
    PYTHONPATH=src python benchmarks/sru_speed.py --sizes 512,8,320 --backends auto --repeat 30
Prints a markdown table; the goal of issue 6 is SRU[auto] / projection ≤ 1.2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import (  # noqa: E402  (the shared timing helper and options)
    add_process_options,
    apply_process_options,
    fwd_bwd,
    interleaved_medians,
)

import quasirnn  # noqa: E402


def sru_rows(sizes, backends, recurrent_gate_off, device, warmup, repeat):
    """[(T, B, H, {column: median ms})] with columns "lstm", "projection", ("sru", backend)
    and, when ``recurrent_gate_off``, ("sru-no-v", "auto")."""
    rows = []
    for T, B, H in sizes:
        torch.manual_seed(0)
        x = torch.randn(T, B, H, device=device)
        fns = {
            "lstm": fwd_bwd(nn.LSTM(H, H).to(device), x),
            "projection": fwd_bwd(nn.Linear(H, 3 * H, bias=False).to(device), x),
        }
        for backend in backends:
            fns["sru", backend] = fwd_bwd(quasirnn.SRU(H, H, num_layers=1, backend=backend).to(device), x)
        if recurrent_gate_off:
            model = quasirnn.SRU(H, H, num_layers=1, recurrent_gate=False).to(device)
            fns["sru-no-v", "auto"] = fwd_bwd(model, x)
        rows.append((T, B, H, interleaved_medians(fns, warmup, repeat, device)))
    return rows


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["512,8,320", "256,16,512", "64,32,256"], help="T,B,H triples")
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument("--repeat", type=int, default=15, help="timed runs")
    p.add_argument("--backends", nargs="+", default=["auto", "torch"], help="SRU backends to time")
    p.add_argument("--no-recurrent-gate", action="store_true",
                   help="also time SRU(recurrent_gate=False) (forget_mult kernel), backend auto")
    add_process_options(p)
    args = p.parse_args()
    apply_process_options(p, args)
    device = torch.device(args.device)
    sizes = [tuple(_ints(s)) for s in args.sizes]
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, median of "
          f"{args.repeat} runs after {args.warmup} warm-up, float32, one layer, forward+backward, "
          f"malloc keeps freed memory: {args.keep_freed_memory}\n")
    rows = sru_rows(sizes, args.backends, args.no_recurrent_gate, device, args.warmup, args.repeat)
    columns = [("sru", b) for b in args.backends] + ([("sru-no-v", "auto")] if args.no_recurrent_gate else [])
    label = {("sru", b): f"SRU[{b}]" for b in args.backends} | {("sru-no-v", "auto"): "SRU no-v[auto]"}
    head = "| T | B | H | LSTM ms | projection ms |"
    head += "".join(f" {label[c]} ms | {label[c]} / projection | LSTM / {label[c]} |" for c in columns)
    print(head)
    print("|" + "---|" * (5 + 3 * len(columns)))
    for T, B, H, t in rows:
        line = f"| {T} | {B} | {H} | {t['lstm']:.2f} | {t['projection']:.2f} |"
        for c in columns:
            line += f" {t[c]:.2f} | {t[c] / t['projection']:.2f} | {t['lstm'] / t[c]:.2f}x |"
        print(line)


if __name__ == "__main__":
    main()
