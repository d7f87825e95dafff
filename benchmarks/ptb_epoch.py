"""Time of one Penn Treebank training epoch: QRNN language model against an equal-size LSTM one.

Both models are built by ``quasirnn lm train``'s own ``build_model`` with the same sizes
(default: AWD-QRNN's PTB model — embedding 400, hidden 1550, 4 layers, batch 20, BPTT 70, QRNN
window 2 in the first layer, and its full softmax, where ``lm train`` now picks the adaptive one for
PTB) and trained with its task's step (``lm_loss``, then ``optimizer_step``) on the real training stream.
Their steps are interleaved (one QRNN step, one LSTM step, …) so drifts in machine speed hit
both alike; each step is timed to completion (CUDA synchronised). AWD-QRNN reports 28 s against
65 s per epoch on a GP100.

Usage:
    python benchmarks/ptb_epoch.py --data ../shared/data/ptb --device cuda
    python benchmarks/ptb_epoch.py --data ../shared/data/ptb --device cpu --max-batches 20   # a slice,
        extrapolated to the whole epoch
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from quasirnn.experiments.language_model import LMConfig, build_model, lm_loss
from quasirnn.training.device import resolve_device
from quasirnn.training.optim import optimizer_step
from quasirnn.training.precision import PRECISIONS, autocast, grad_scaler, resolve_precision
from quasirnn.data import batchify, bptt_batches, load_corpus
from quasirnn.models import CELLS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with ptb.{train,valid,test}.txt")
    p.add_argument("--device", default="auto")
    p.add_argument("--cells", nargs="+", choices=CELLS, default=["qrnn", "lstm"])
    p.add_argument("--emb-size", type=int, default=400)
    p.add_argument("--hidden-size", type=int, default=1550)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--window", type=int, default=None,
                   help="QRNN window of every layer (default: AWD-QRNN's 2 in the first layer, 1 above)")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--bptt", type=int, default=70)
    p.add_argument("--precision", choices=PRECISIONS, default="32")
    p.add_argument("--max-batches", type=int, default=None, help="time only this many batches and extrapolate")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    args = p.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)  # "auto" once per run (bf16 for every cell where the CPU has it)
    corpus = load_corpus(args.data)
    train = batchify(corpus.train, args.batch_size).to(device)
    batches = list(bptt_batches(train, args.bptt))
    epoch_batches = len(batches)
    timed = batches[: args.max_batches] if args.max_batches else batches

    runs = {}
    for cell in args.cells:
        config = LMConfig().replace(cell=cell, emb_size=args.emb_size, hidden_size=args.hidden_size,
                                    num_layers=args.num_layers, window=args.window, zoneout=0.0,
                                    softmax="full")
        torch.manual_seed(0)
        model = build_model(config.model, len(corpus.vocab)).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        runs[cell] = dict(model=model, opt=optimizer, scaler=grad_scaler(precision, device), hidden=None,
                          seconds=0.0, params=sum(p.numel() for p in model.parameters()))

    def step(run, inputs, targets):
        with autocast(precision, device):
            loss, run["hidden"] = lm_loss(run["model"], inputs, targets, run["hidden"])
        optimizer_step(run["model"], run["opt"], loss, 0.25, scaler=run["scaler"])

    for run in runs.values():
        for _, inputs, targets in batches[: args.warmup]:
            step(run, inputs, targets)
        run["hidden"] = None
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _, inputs, targets in timed:
        for run in runs.values():
            sync()
            t0 = time.perf_counter()
            step(run, inputs, targets)
            sync()
            run["seconds"] += time.perf_counter() - t0

    tokens = sum(t.numel() for _, _, t in timed)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, device {device} ({where}), precision {args.precision}; "
          f"emb {args.emb_size}, hidden {args.hidden_size}, {args.num_layers} layers, batch {args.batch_size}, "
          f"bptt {args.bptt}; timed {len(timed)} of {epoch_batches} batches per epoch\n")
    print("| cell | parameters | tokens/s | epoch s | epoch time / QRNN's |")
    print("|---|---|---|---|---|")
    base = runs.get("qrnn", next(iter(runs.values())))
    for cell, run in runs.items():
        epoch_s = run["seconds"] * epoch_batches / len(timed)
        ratio = run["seconds"] / base["seconds"] if base["seconds"] else math.nan
        print(f"| {cell} | {run['params'] / 1e6:.2f} M | {tokens / run['seconds']:,.0f} | {epoch_s:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
