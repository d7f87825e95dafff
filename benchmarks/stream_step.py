"""Streaming step latency: one time step of a 2-layer model at B = 1, µs per step (issue 34, item 2).

For each hidden size H (input size N = H), in one process, one thread, under ``torch.inference_mode``:

* ``module``: today's path, the QRNN / SRU module called on T = 1 with the state of the previous call;
* ``stepper``: :class:`quasirnn.nn.streaming.Stepper` on the same module;
* ``stepper chunk of C``: :meth:`Stepper.chunk` of ``--chunk`` steps, its time per step (one
  matrix product per layer for the C steps: below the one-step floor);
* ``stepper int8``: the stepper on the module after ``torch.ao.quantization.quantize_dynamic``
  (int8 weights, dynamically quantised activations);
* ``matvec floor``: the step's own matrix–vector products alone, ``torch.mv`` of every layer's
  (G·H, k·N) weight with a vector: the arithmetic a step cannot go below at B = 1;
* ``nn.LSTM``: ``torch.nn.LSTM`` of the same sizes called on T = 1 with its state, as it runs by
  default (oneDNN's RNN on the CPU) and with oneDNN off (torch's own kernels: several times
  faster at T = 1 on the CPU measured); the last column is the ratio to the faster of the two.

The QRNN is window 1, fo-pooling (two H × 3H products per step, as the SRU's). Each round times
``--number`` steps of every path, in an order reversed every other round (so that load on the
machine falls on all of them); the table gives the median over ``--rounds`` rounds and the ratios
to the floor and to nn.LSTM of the same H.

Usage:
    python benchmarks/stream_step.py                                  # H = 256 and 512
    python benchmarks/stream_step.py --hidden 16 --rounds 2 --number 20   # quick
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch import nn

import quasirnn
from quasirnn.nn.streaming import Stepper


def _stepping(module, x):
    """A closure that runs ``module`` on T = 1 with the state of its previous call."""
    state = [module(x[None])[1]]

    def run():
        state[0] = module(x[None], state[0])[1]
    return run


def _stepper(module, x):
    stepper = Stepper(module)
    state = [stepper.step(x)[1]]

    def run():
        state[0] = stepper.step(x, state[0])[1]
    return run


def _chunk(module, x, steps):
    """A closure that runs ``steps`` steps as one :meth:`Stepper.chunk` (its time is divided by ``steps``)."""
    stepper, xs = Stepper(module), x[None].expand(steps, *x.shape).contiguous()
    state = [stepper.chunk(xs)[1]]

    def run():
        state[0] = stepper.chunk(xs, state[0])[1]
    return run


def _floor(module, x):
    weights = [layer.linear.weight.detach() for layer in module.layers]
    v = x[0]

    def run():
        for w in weights:
            torch.mv(w, v)
    return run


def _int8(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


def paths(hidden: int, layers: int, chunk: int) -> dict:
    """{name: closure} for one hidden size (a chunk row runs ``chunk`` steps a call)."""
    torch.manual_seed(0)
    x = torch.randn(1, hidden)
    qrnn = quasirnn.QRNN(hidden, hidden, layers, window=1, pooling="fo").eval()
    sru = quasirnn.SRU(hidden, hidden, layers).eval()
    lstm = nn.LSTM(hidden, hidden, layers).eval()
    lstm_state = [lstm(x[None])[1]]

    def lstm_step():
        lstm_state[0] = lstm(x[None], lstm_state[0])[1]

    def lstm_native_step():  # oneDNN's RNN primitive costs ms a call at T = 1 here: torch's own kernels
        torch.backends.mkldnn.enabled = False
        lstm_state[0] = lstm(x[None], lstm_state[0])[1]
        torch.backends.mkldnn.enabled = True
    return {
        "QRNN module": _stepping(qrnn, x), "QRNN stepper": _stepper(qrnn, x),
        f"QRNN stepper chunk of {chunk}": _chunk(qrnn, x, chunk),
        "QRNN stepper int8": _stepper(_int8(qrnn), x), "QRNN matvec floor": _floor(qrnn, x),
        "SRU module": _stepping(sru, x), "SRU stepper": _stepper(sru, x),
        f"SRU stepper chunk of {chunk}": _chunk(sru, x, chunk),
        "SRU stepper int8": _stepper(_int8(sru), x), "SRU matvec floor": _floor(sru, x),
        "nn.LSTM": lstm_step, "nn.LSTM oneDNN off": lstm_native_step,
    }


def measure(runs: dict, rounds: int, number: int) -> dict:
    """Median µs per call of each closure over ``rounds`` rounds of ``number`` calls, the order of
    the closures reversed every other round."""
    times = {name: [] for name in runs}
    names = list(runs)
    for name in names:  # warm-up
        for _ in range(max(number // 4, 2)):
            runs[name]()
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            run = runs[name]
            start = time.perf_counter()
            for _ in range(number):
                run()
            times[name].append((time.perf_counter() - start) / number * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="256,512", help="comma-separated hidden sizes H (N = H)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=8, help="steps per Stepper.chunk call of the chunk rows")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--number", type=int, default=300, help="steps per path per round")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"Streaming step, {args.layers} layers, B = 1, one thread, torch {torch.__version__}; median of "
          f"{args.rounds} rounds x {args.number} steps, order alternated\n")
    print("| H | path | µs / step | × its matvec floor | × the faster nn.LSTM |")
    print("|---|---|---|---|---|")
    for hidden in (int(h) for h in args.hidden.split(",")):
        with torch.inference_mode():
            t = measure(paths(hidden, args.layers, args.chunk), args.rounds, args.number)
        for name in t:
            if " chunk of " in name:
                t[name] /= args.chunk  # per step
        lstm = min(t["nn.LSTM"], t["nn.LSTM oneDNN off"])
        for name, us in t.items():
            cell = name.split()[0]
            floor = t.get(f"{cell} matvec floor")
            ratio = "" if floor is None or name.endswith("floor") else f"{us / floor:.2f}x"
            print(f"| {hidden} | {name} | {us:.1f} | {ratio} | {us / lstm:.2f}x |")


if __name__ == "__main__":
    main()
