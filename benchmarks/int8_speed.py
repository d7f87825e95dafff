"""Inference speed of int8 models against float32: 2-layer QRNN, SRU and nn.LSTM on the CPU.

For each (T, B, H) and each thread count, times the forward pass (``torch.inference_mode``) of
  * ``quasirnn.QRNN(H, H, num_layers=2)`` and ``quasirnn.QRNN`` after ``quasirnn.quantize(.., "int8")``,
  * ``quasirnn.SRU(H, H, num_layers=2)`` and its quantised copy,
  * ``torch.nn.LSTM(H, H, num_layers=2)`` and ``torch.ao.quantization.quantize_dynamic`` of it
    (``{nn.LSTM}``: int8 weights in both matrix products of every step),
all in one run, round-robin (``layer_speed.py``'s timing helper), so that the ratios are fair on a
loaded machine. Also prints each int8 model's relative output error ‖y₈ − y‖ / ‖y‖.

``--torchao`` adds the rows "qrnn-torchao" and "sru-torchao": the same models quantised by torchao
(``quantize_(model, Int8DynamicActivationInt8WeightConfig())``, ``pip install torchao``), the
successor of ``torch.ao.quantization`` that ``quasirnn.quantize`` was measured against. On a CPU
without AVX-512 VNNI its int8 matrix product is a slow fallback (8–30× slower than float32 on the
2-core AMD EPYC of BENCHMARKS.md), so these rows take minutes at the default sizes.

Usage:
    PYTHONPATH=src python benchmarks/int8_speed.py                 # (512,8,320), (256,32,512); threads 1 and 2
    PYTHONPATH=src python benchmarks/int8_speed.py --quick         # tiny sizes, one repeat: checks it runs
    PYTHONPATH=src python benchmarks/int8_speed.py --torchao --repeat 2 --warmup 1
Prints a markdown table; issue 34's goal is fp32 / int8 ≥ 2 for the QRNN at both sizes.
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_speed import interleaved_medians  # noqa: E402  (the shared round-robin timing)

import quasirnn  # noqa: E402

MODELS = ("qrnn", "sru", "lstm")
TORCHAO = ("qrnn-torchao", "sru-torchao")


def build(name: str, H: int) -> tuple[nn.Module, nn.Module]:
    """(float32 model, its int8 copy), 2 layers of H units, in eval mode."""
    if name.endswith("-torchao"):
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        fp, _ = build(name.removesuffix("-torchao"), H)
        q = copy.deepcopy(fp)
        quantize_(q, Int8DynamicActivationInt8WeightConfig())
        return fp, q
    if name == "lstm":
        fp = nn.LSTM(H, H, num_layers=2).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fp, torch.ao.quantization.quantize_dynamic(nn.Sequential(fp), {nn.LSTM}, dtype=torch.qint8)[0]
    fp = (quasirnn.QRNN if name == "qrnn" else quasirnn.SRU)(H, H, num_layers=2).eval()
    return fp, quasirnn.quantize(fp, "int8")


def rows(sizes, threads_list, warmup, repeat, names=MODELS):
    """Yields (model, T, B, H, threads, fp32 ms, int8 ms, relative error) for the models ``names``, a thread
    count's rows at a time."""
    for T, B, H in sizes:
        torch.manual_seed(0)
        x = torch.randn(T, B, H)
        models = {name: build(name, H) for name in names}
        with torch.inference_mode():
            errors = {}
            for name, (fp, q) in models.items():
                y = fp(x)[0]
                errors[name] = ((q(x)[0] - y).norm() / y.norm()).item()
            for threads in threads_list:
                torch.set_num_threads(threads)
                fns = {(name, kind): (lambda m=m: m(x)) for name, pair in models.items()
                       for kind, m in zip(("fp32", "int8"), pair)}
                ms = interleaved_medians(fns, warmup, repeat, torch.device("cpu"))
                yield from ((name, T, B, H, threads, ms[name, "fp32"], ms[name, "int8"], errors[name])
                            for name in names)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["512,8,320", "256,32,512"], help="T,B,H triples")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (torch.set_num_threads)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    p.add_argument("--repeat", type=int, default=7, help="timed runs (median)")
    p.add_argument("--quick", action="store_true", help="sizes 16,2,8 only, 0 warmup, 1 repeat, 1 thread")
    p.add_argument("--torchao", action="store_true", help="add the QRNN and SRU quantised by torchao (installed)")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.threads, args.warmup, args.repeat = ["16,2,8"], [1], 0, 1
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
    print(f"torch {torch.__version__}, 2 layers, forward in inference mode, median of {args.repeat} (round-robin)")
    print("| model | T | B | H | threads | fp32 ms | int8 ms | fp32 / int8 | int8 rel. error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, T, B, H, threads, fp, q, err in rows(sizes, args.threads, args.warmup, args.repeat,
                                                         MODELS + (TORCHAO if args.torchao else ())):
        print(f"| {name} | {T} | {B} | {H} | {threads} | {fp:.1f} | {q:.1f} | {fp / q:.2f}x | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
