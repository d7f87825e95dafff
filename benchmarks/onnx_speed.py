"""Inference latency of a QRNN exported to ONNX (onnxruntime, CPU) against PyTorch eager, float32
and onnxruntime's int8 dynamic quantisation, full sequences and streaming steps.

Exports ``quasirnn.QRNN(H, H, L, window=k)`` in eval mode with
``quasirnn.onnx.export(..., with_state=True)`` (the state as graph inputs and outputs; the pooling
recurrence as an ONNX ``Scan``; T and B dynamic), quantises a copy with
``onnxruntime.quantization.quantize_dynamic`` (8-bit weights, activations quantised per call: the
gate projections' MatMuls become DynamicQuantizeLinear + MatMulInteger), then times in one run, round-robin with
the order reversed every other round:

  * ``full``: a whole sequence (T, B, H) from the zero state: PyTorch eager under
    ``torch.inference_mode()`` (the fused numba pooling kernel), onnxruntime float32, onnxruntime int8;
  * ``step``: one step at a time (T = 1) at B = 1 with the state carried between calls
    (eager ``qrnn(x_t, state)``; onnxruntime through :class:`quasirnn.onnx.Stream`), in µs per step.

Every column uses ``--threads`` threads (onnxruntime's intra-op pool is set to the same number).
The error columns are max |y − y_eager| / max |y_eager| over the output of the whole sequence
(streamed step by step for ``step``).

Usage:
    PYTHONPATH=src python benchmarks/onnx_speed.py --threads 1
    PYTHONPATH=src python benchmarks/onnx_speed.py --sizes 512,8,320 --stream 256 --repeat 20
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import quasirnn
import quasirnn.onnx


def alternated_medians(fns: dict, warmup: int, repeat: int) -> dict:
    """Median wall time (ms) of each callable, timed round-robin, the order reversed every other
    round so that neither drifts in machine speed nor going first favour a column."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeat):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def sessions(model, H: int, threads, tmp: Path):
    """float32 and int8 onnxruntime sessions of ``model`` exported with its state."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, int8 = tmp / "qrnn.onnx", tmp / "qrnn_int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quasirnn.onnx.export(model, (torch.randn(12, 3, H),), fp32, with_state=True)
        # uint8 weights: with int8 ones (u8s8), CPUs without VNNI saturate in the int16 sums of their
        # u8 x s8 instruction (relative output error 0.13 here against 0.012 for u8u8, as fast)
        quantize_dynamic(fp32, int8, weight_type=QuantType.QUInt8)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in (fp32, int8)]


def _error(got: np.ndarray, want: torch.Tensor) -> float:
    return float(np.abs(got - want.numpy()).max() / want.abs().max())


def full_row(model, sess, T, B, H, warmup, repeat):
    x = torch.randn(T, B, H)
    with torch.inference_mode():
        want = model(x)[0]
    streams = [quasirnn.onnx.Stream(s, batch_size=B) for s in sess]

    def onnx(stream):
        stream.reset()
        return stream(x.numpy())

    errors = [_error(onnx(s), want) for s in streams]

    def eager():
        with torch.inference_mode():
            model(x)

    t = alternated_medians({"eager": eager, "fp32": lambda: onnx(streams[0]), "int8": lambda: onnx(streams[1])},
                           warmup, repeat)
    return f"full ({T}, {B}, {H})", "ms", t, errors


def step_row(model, sess, H, warmup, repeat, steps=32):
    x = torch.randn(steps, 1, H)
    with torch.inference_mode():
        want = model(x)[0]
    streams = [quasirnn.onnx.Stream(s, batch_size=1) for s in sess]
    xs = [x[t : t + 1].numpy() for t in range(steps)]

    def onnx(stream):
        stream.reset()
        return np.concatenate([stream(xt) for xt in xs])

    errors = [_error(onnx(s), want) for s in streams]
    xt = [x[t : t + 1] for t in range(steps)]

    def eager():
        with torch.inference_mode():
            state = None
            for step in xt:
                _, state = model(step, state)

    t = alternated_medians({"eager": eager, "fp32": lambda: onnx(streams[0]), "int8": lambda: onnx(streams[1])},
                           warmup, repeat)
    return f"step (T=1, B=1, {H})", "µs/step", {k: v * 1e3 / steps for k, v in t.items()}, errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="*", default=["512,8,320", "256,32,512"], help="T,B,H of the full-sequence rows")
    p.add_argument("--stream", nargs="*", type=int, default=[256], help="H of the streaming-step rows")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="threads for every column (0: their own choice)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"QRNN, {args.layers} layers, window {args.window}, fo-pooling, CPU, threads {args.threads or 'default'}; "
          f"median of {args.repeat} runs, order alternated; errors: max |y - y_eager| / max |y_eager|\n")
    print("| case | unit | eager fp32 | onnxruntime fp32 | onnxruntime int8 | fp32 / eager | int8 / eager "
          "| fp32 error | int8 error |")
    print("|---|---|---|---|---|---|---|---|---|")
    jobs = [tuple(int(v) for v in s.split(",")) for s in args.sizes] + [(None, None, H) for H in args.stream]
    for T, B, H in jobs:
        torch.manual_seed(0)
        model = quasirnn.QRNN(H, H, args.layers, window=args.window).eval()
        with tempfile.TemporaryDirectory() as tmp:
            sess = sessions(model, H, args.threads, Path(tmp))
        if T is None:
            case, unit, t, errors = step_row(model, sess, H, args.warmup, args.repeat)
        else:
            case, unit, t, errors = full_row(model, sess, T, B, H, args.warmup, args.repeat)
        print(f"| {case} | {unit} | {t['eager']:.1f} | {t['fp32']:.1f} | {t['int8']:.1f} | "
              f"{t['fp32'] / t['eager']:.2f}x | {t['int8'] / t['eager']:.2f}x | {errors[0]:.1e} | {errors[1]:.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
