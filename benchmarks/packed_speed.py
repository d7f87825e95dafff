"""Cost of variable-length support: QRNN (and SRU) forward+backward on a batch given plainly,
with ``lengths`` and as a ``PackedSequence`` (built once beforehand, as a caller holds it), on
the same tokens (every sequence full length, so all three compute the same thing), timed side
by side in one run.

Usage:
    python benchmarks/packed_speed.py                      # (T, B, H) = (512, 8, 320), (256, 16, 512), (64, 32, 256)
    python benchmarks/packed_speed.py --sizes 512,8,320 --repeat 30
Prints a markdown table; the goal of issue 6 is length-aware ≤ 1.1× the plain run.
"""

from __future__ import annotations

import argparse

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import quasirnn
from layer_speed import interleaved_medians  # benchmarks/ is the script's directory


def fwd_bwd(model, make_input, lengths=None):
    def step():
        x = make_input()
        out, state = model(x) if lengths is None else model(x, lengths=lengths)
        out = out.data if hasattr(out, "batch_sizes") else out
        (out.sum() + state.c.sum()).backward()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["512,8,320", "256,16,512", "64,32,256"], help="T,B,H triples")
    p.add_argument("--cells", nargs="+", default=["qrnn", "sru"])
    p.add_argument("--window", type=int, default=2, help="QRNN window")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args()
    device = torch.device("cpu")
    print(f"torch {torch.__version__}, cpu, threads {torch.get_num_threads()}, median of {args.repeat} runs, "
          f"forward+backward, float32, every sequence full length\n")
    print("| cell | T | B | H | plain ms | lengths ms | lengths / plain | packed ms | packed / plain |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        T, B, H = (int(v) for v in size.split(","))
        for cell in args.cells:
            torch.manual_seed(0)
            if cell == "qrnn":
                model = quasirnn.QRNN(H, H, window=args.window)
            else:
                model = quasirnn.SRU(H, H, num_layers=1)
            x = torch.randn(T, B, H, requires_grad=True)
            lengths = torch.full((B,), T)
            # the PackedSequence is the caller's input, built once (PyTorch's packing is not timed);
            # its data is a leaf, as x is, so both calls backpropagate into their input
            packed = pack_padded_sequence(x.detach(), lengths)
            packed = PackedSequence(packed.data.requires_grad_(), packed.batch_sizes, packed.sorted_indices,
                                    packed.unsorted_indices)
            t = interleaved_medians({
                "plain": fwd_bwd(model, lambda: x),
                "lengths": fwd_bwd(model, lambda: x, lengths),
                "packed": fwd_bwd(model, lambda: packed),
            }, args.warmup, args.repeat, device)
            print(f"| {cell} | {T} | {B} | {H} | {t['plain']:.1f} | {t['lengths']:.1f} | "
                  f"{t['lengths'] / t['plain']:.2f} | {t['packed']:.1f} | {t['packed'] / t['plain']:.2f} |")


if __name__ == "__main__":
    main()
