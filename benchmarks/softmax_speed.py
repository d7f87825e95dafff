"""Language-model training speed with a full and an adaptive softmax, QRNN and LSTM side by side.

On a corpus with a large vocabulary (default: the IMDb corpus of ``benchmarks/imdb_corpus.py``,
33,278 words) each model is built by ``quasirnn lm train``'s own ``build_model`` with its
default sizes (embedding 200, hidden 600, 3 layers, batch 32, BPTT 70, weights tied) and trained
with its task's step (``lm_loss``, then ``optimizer_step``) and optimiser on the same training windows. Variants: QRNN and LSTM, each
with the full softmax and the adaptive one (tied to the embedding, cutoffs from the training
counts as ``--softmax adaptive`` chooses them), and the QRNN with torch's untied
``AdaptiveLogSoftmaxWithLoss`` (same cutoffs). Steps are interleaved (one step of each variant
in turn) so drifts in machine speed hit all alike. Goals (issue 18): QRNN-adaptive ≥ 2× the
LSTM-adaptive tokens/s and ≥ 2.5× the QRNN-full tokens/s. ``--precision auto`` (default) trains each
cell in ``lm train``'s default precision (bf16 for the QRNN on CPUs with bfloat16 instructions, else
float32; :meth:`quasirnn.training.launch.Experiment.precision`); ``32`` or ``bf16`` puts every variant in that one.

Usage:
    python benchmarks/imdb_corpus.py                      # once: writes the corpus into the user cache
    python benchmarks/softmax_speed.py [--data DIR] [--steps 20] [--threads 1] [--precision auto|32|bf16]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from quasirnn.data import batchify, bptt_batches, cache_dir, load_corpus
from quasirnn.experiments.language_model import EXPERIMENT, LMConfig, build_model, lm_loss, resolve_softmax
from quasirnn.training.precision import autocast
from quasirnn.training.optim import make_optimizer, optimizer_step

DEFAULTS = LMConfig()

VARIANTS = {
    "qrnn-full": ("qrnn", "full", True),
    "qrnn-adaptive": ("qrnn", "adaptive", True),
    "qrnn-adaptive-untied": ("qrnn", "adaptive", False),
    "lstm-full": ("lstm", "full", True),
    "lstm-adaptive": ("lstm", "adaptive", True),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None,
                   help="corpus directory (default: the user cache's imdb-lm, written by benchmarks/imdb_corpus.py)")
    p.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    p.add_argument("--steps", type=int, default=20, help="timed training steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--precision", choices=("auto", "32", "bf16"), default="auto",
                   help="auto: each cell in lm train's default precision; 32 or bf16: every variant (default: auto)")
    for name in ("emb_size", "hidden_size", "num_layers", "batch_size", "bptt"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=DEFAULTS.to_dict()[name])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = args.data or cache_dir() / "imdb-lm"
    if not (data / "train.txt").is_file() and not (data / "ptb.train.txt").is_file():
        raise SystemExit(f"no corpus in {data}: run benchmarks/imdb_corpus.py first, or pass --data")
    corpus = load_corpus(data)
    vocab = len(corpus.vocab)
    train = batchify(corpus.train, args.batch_size)
    batches = list(bptt_batches(train, args.bptt))[: args.warmup + args.steps]

    runs = {}
    for name in args.variants:
        cell, softmax, tied = VARIANTS[name]
        config = DEFAULTS.replace(cell=cell, softmax=softmax, cutoffs=None, emb_size=args.emb_size,
                                  hidden_size=args.hidden_size, num_layers=args.num_layers, batch_size=args.batch_size,
                                  bptt=args.bptt, window=DEFAULTS.model.window if cell == "qrnn" else 1)
        options, order = resolve_softmax(config.model, corpus.train, vocab)
        config = config.replace(softmax=options.softmax, cutoffs=options.cutoffs, tie_weights=tied)
        config = config.replace(precision=EXPERIMENT.precision(config, torch.device("cpu"), args.precision))
        torch.manual_seed(0)
        model = build_model(config.model, vocab, order).train()
        opt = make_optimizer(config.optim.optimizer, model, config.optim.lr, config.optim.wdecay)
        runs[name] = dict(model=model, opt=opt, clip=config.optim.clip, hidden=None,
                          seconds=0.0, losses=[], cutoffs=config.model.cutoffs, params=model.num_parameters(),
                          precision=config.run.precision)

    for i, (_, inputs, targets) in enumerate(batches):
        for run in runs.values():
            t0 = time.perf_counter()
            with autocast(run["precision"], inputs.device):
                loss, run["hidden"] = lm_loss(run["model"], inputs, targets, run["hidden"])
            optimizer_step(run["model"], run["opt"], loss, run["clip"])
            loss = loss.item()
            if i >= args.warmup:
                run["seconds"] += time.perf_counter() - t0
                run["losses"].append(loss)

    timed = batches[args.warmup :]
    tokens = sum(t.numel() for _, _, t in timed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; corpus {data.name}: vocabulary {vocab:,}, "
          f"{corpus.train.numel():,} training tokens; emb {args.emb_size}, hidden {args.hidden_size}, "
          f"{args.num_layers} layers, batch {args.batch_size}, bptt {args.bptt}; {len(timed)} timed steps each "
          f"({args.warmup} warm-up), interleaved\n")
    print("| model | softmax | cutoffs | precision | parameters | tokens/s | ms/step | mean loss | tokens/s vs qrnn-full |")
    print("|---|---|---|---|---|---|---|---|---|")
    rate = {name: tokens / run["seconds"] for name, run in runs.items()}
    base = rate.get("qrnn-full", math.nan)
    for name, run in runs.items():
        cell, softmax, tied = VARIANTS[name]
        kind = softmax + ("" if softmax == "full" else (" tied" if tied else " untied (torch)"))
        cutoffs = ",".join(map(str, run["cutoffs"])) if run["cutoffs"] else "-"
        print(f"| {cell} | {kind} | {cutoffs} | {run['precision']} | {run['params'] / 1e6:.2f} M | {rate[name]:,.0f} | "
              f"{1000 * run['seconds'] / len(timed):,.0f} | {sum(run['losses']) / len(run['losses']):.3f} | "
              f"{rate[name] / base:.2f}x |")
    print()
    for a, b, goal in (("qrnn-adaptive", "lstm-adaptive", 2.0), ("qrnn-adaptive", "qrnn-full", 2.5),
                       ("qrnn-full", "lstm-full", None), ("qrnn-adaptive-untied", "qrnn-adaptive", None)):
        if a in rate and b in rate:
            print(f"- {a} / {b}: {rate[a] / rate[b]:.2f}x" + (f" (goal >= {goal}x)" if goal else ""))


if __name__ == "__main__":
    main()
