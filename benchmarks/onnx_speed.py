"""Inference latency of a QRNN exported to ONNX (onnxruntime, CPU) against PyTorch eager.

Exports ``quasirnn.QRNN(H, H, L, window=k)`` in eval mode with :func:`quasirnn.onnx.export`
(the pooling recurrence as an ONNX ``Scan``; dynamic sequence length), then times, round-robin
in one run (the timing helper of ``layer_speed.py``):

  * PyTorch eager under ``torch.inference_mode()`` (the fused numba pooling kernel),
  * onnxruntime's CPUExecutionProvider on the exported file,

with both using ``--threads`` threads (onnxruntime's intra-op pool is set to the same number).

Usage:
    PYTHONPATH=src python benchmarks/onnx_speed.py --threads 2
    PYTHONPATH=src python benchmarks/onnx_speed.py --sizes 512,8,320 --layers 2 --repeat 20
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import interleaved_medians  # noqa: E402

import quasirnn  # noqa: E402
import quasirnn.onnx  # noqa: E402


def rows(sizes, layers, window, threads, warmup, repeat):
    import onnxruntime as ort

    out = []
    for T, B, H in sizes:
        torch.manual_seed(0)
        model = quasirnn.QRNN(H, H, layers, window=window).eval()
        x = torch.randn(T, B, H)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = Path(tmp) / "qrnn.onnx"
            quasirnn.onnx.export(model, (x[:16],), path, dynamic_shapes=({0: torch.export.Dim("T", min=1)},))
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        feed = {name: x.numpy()}
        got = session.run(None, feed)[0]
        with torch.inference_mode():
            diff = float((torch.from_numpy(got) - model(x)[0]).abs().max())

        def eager():
            with torch.inference_mode():
                model(x)

        times = interleaved_medians({"eager": eager, "onnx": lambda: session.run(None, feed)}, warmup, repeat,
                                    torch.device("cpu"))
        out.append((T, B, H, times["eager"], times["onnx"], diff))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["512,8,320"], help="T,B,H triples")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: their own choice)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
    print(f"QRNN, {args.layers} layers, window {args.window}, fo-pooling, float32, CPU, "
          f"threads {args.threads or 'default'}; median of {args.repeat} runs\n")
    print("| T | B | H | eager ms | onnxruntime ms | onnxruntime / eager | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for T, B, H, eager, onnx, diff in rows(sizes, args.layers, args.window, args.threads, args.warmup, args.repeat):
        print(f"| {T} | {B} | {H} | {eager:.2f} | {onnx:.2f} | {onnx / eager:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
