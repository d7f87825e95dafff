"""Per-token time of ``generate()`` through Hugging Face ``transformers`` (``quasirnn.hf``) against the
project's own generation, and against a GPT-2 of about the same size as the sequence grows.

1. Per token, B = 1 and B = 8: the default ``lm train`` model (LMConfig's sizes, random weights, a
   full softmax over 10,000 words as PTB's, the pure-PyTorch recurrence that ``lm generate`` uses),
   greedy, one thread. "quasirnn": ``LanguageModel.generate(top_k=1)`` at B = 1 (what ``lm
   generate --top-k 1`` runs), and at B = 8 the same step (``features`` of one token per sequence
   with the carried state, ``decode``, argmax) in a loop, as ``generate`` takes one sequence;
   "transformers": ``QRNNForCausalLM.generate(do_sample=False)`` of the same weights, the recurrent
   state as its cache. ms from one token to the next (a streamer's timestamps for ``generate()``),
   the median of ``--tokens`` after ``--warmup``, then the median over ``--rounds`` rounds taken
   round-robin (other load on the machine falls on all of them).
2. Per token at a total length (prompt + generated) of ``--lengths``, B = 1, both through
   ``generate()``: the QRNN above, and a GPT-2 (``GPT2LMHeadModel``, ``--gpt2`` E,L, 4 heads, the same
   vocabulary, its default KV cache) of about its parameter count: the prompt is the length less
   the tokens timed. A recurrent step costs the same at any position; attention's grows with it.

Usage:
    python benchmarks/hf_generate.py                 # the default model, 64 tokens, 3 rounds
    python benchmarks/hf_generate.py --quick         # tiny sizes, a few tokens (the test's)
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.streamers import BaseStreamer

from quasirnn.experiments.language_model import LMConfig, build_model
from quasirnn.hf import QRNNForCausalLM


class _Clock(BaseStreamer):
    """Timestamps each step of ``generate()`` (its first ``put`` is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _median_gap(times: list[float], warmup: int) -> float:
    gaps = [b - a for a, b in zip(times, times[1:])]
    return statistics.median(gaps[warmup:]) * 1e3


def hf_ms(model, prompt: torch.Tensor, tokens: int, warmup: int) -> float:
    """Median ms between consecutive tokens of ``model.generate`` (greedy), after ``warmup`` tokens."""
    clock = _Clock()
    n = tokens + warmup + 1
    model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, streamer=clock)
    return _median_gap(clock.times[1:], warmup)


@torch.inference_mode()
def ours_ms(lm, prompt: torch.Tensor, tokens: int, warmup: int) -> float:
    """Median ms between consecutive greedy tokens of the project's generation (B = 1: ``generate``)."""
    times = [time.perf_counter()]
    if prompt.size(0) == 1:
        for _ in lm.generate(prompt[0].tolist(), tokens + warmup + 1, top_k=1):
            times.append(time.perf_counter())
    else:
        _, x, hidden = lm.features(prompt.t())
        ids = lm.decode(x[-1]).argmax(-1)
        for _ in range(tokens + warmup + 1):
            _, x, hidden = lm.features(ids.view(1, -1), hidden)
            ids = lm.decode(x[0]).argmax(-1)
            times.append(time.perf_counter())
    return _median_gap(times[1:], warmup)


def per_token(args, lm, hf) -> None:
    torch.manual_seed(0)
    rows = {b: {"quasirnn": [], "transformers": []} for b in args.batches}
    for _ in range(args.rounds):
        for b in args.batches:
            prompt = torch.randint(0, args.vocab, (b, 8))
            rows[b]["quasirnn"].append(ours_ms(lm, prompt, args.tokens, args.warmup))
            rows[b]["transformers"].append(hf_ms(hf, prompt, args.tokens, args.warmup))
    print(f"Per-token time, greedy, {torch.get_num_threads()} thread(s): qrnn (E, H, L) = {tuple(args.size)}, "
          f"vocabulary {args.vocab:,}, full softmax, {lm.num_parameters() / 1e6:.2f} M parameters; median of "
          f"{args.tokens} tokens after {args.warmup}, median of {args.rounds} rounds\n")
    print("| B | quasirnn ms/token | transformers generate() ms/token | ratio |")
    print("|---|---|---|---|")
    for b, row in rows.items():
        ours, theirs = statistics.median(row["quasirnn"]), statistics.median(row["transformers"])
        print(f"| {b} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}x |")


def by_length(args, hf) -> None:
    emb, layers = args.gpt2
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=args.vocab, n_embd=emb, n_layer=layers, n_head=4,
                                      n_positions=max(args.lengths) + 1, bos_token_id=None, eos_token_id=None))
    gpt2.eval()
    models = {"qrnn (quasirnn.hf)": hf, f"GPT-2 (E {emb}, {layers} layers)": gpt2}
    times = {(name, n): [] for name in models for n in args.lengths}
    for _ in range(args.rounds):
        for n in args.lengths:
            timed = min(args.tokens, n // 2)
            prompt = torch.randint(0, args.vocab, (1, n - timed - args.warmup - 1))
            for name, model in models.items():
                times[(name, n)].append(hf_ms(model, prompt, timed, args.warmup))
    print(f"\nPer-token time of generate() at a total length (prompt + generated), B = 1, greedy; the last "
          f"min({args.tokens}, length / 2) tokens timed, median of {args.rounds} rounds\n")
    print("| model | parameters | " + " | ".join(f"length {n:,} ms/token" for n in args.lengths) + " |")
    print("|---|---|" + "---|" * len(args.lengths))
    for name, model in models.items():
        cells = " | ".join(f"{statistics.median(times[(name, n)]):.2f}" for n in args.lengths)
        print(f"| {name} | {model.num_parameters() / 1e6:.2f} M | {cells} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = LMConfig().model
    p.add_argument("--size", default=f"{defaults.emb_size},{defaults.hidden_size},{defaults.num_layers}",
                   help="E,H,L of the qrnn (default: LMConfig's)")
    p.add_argument("--vocab", type=int, default=10_000, help="vocabulary size (default: 10,000, PTB's)")
    p.add_argument("--tokens", type=int, default=64, help="timed tokens per measurement")
    p.add_argument("--warmup", type=int, default=8, help="untimed tokens first")
    p.add_argument("--rounds", type=int, default=3, help="round-robin rounds")
    p.add_argument("--batches", default="1,8", help="batch sizes of the first table")
    p.add_argument("--lengths", default="64,512,2048", help="total lengths of the second table")
    p.add_argument("--gpt2", default="192,4", help="E,L of the GPT-2 (default: about the default qrnn's parameters)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes and a few tokens: checks that the script runs")
    args = p.parse_args()
    if args.quick:
        args.size, args.vocab, args.tokens, args.warmup, args.rounds = "16,24,2", 50, 4, 1, 1
        args.lengths, args.gpt2 = "16,32", "16,2"
    args.size = [int(v) for v in args.size.split(",")]
    args.batches = [int(v) for v in args.batches.split(",")]
    args.lengths = [int(v) for v in args.lengths.split(",")]
    args.gpt2 = [int(v) for v in args.gpt2.split(",")]
    torch.set_num_threads(args.threads)
    emb, hidden, layers = args.size
    options = dataclasses.replace(LMConfig().model, backend="torch", softmax="full", emb_size=emb,
                                  hidden_size=hidden, num_layers=layers)
    torch.manual_seed(0)
    lm = build_model(options, args.vocab).eval()
    hf = QRNNForCausalLM.from_language_model(lm)
    print(f"torch {torch.__version__}, transformers {__import__('transformers').__version__}, "
          f"{time.strftime('%Y-%m-%d')}\n")
    per_token(args, lm, hf)
    by_length(args, hf)


if __name__ == "__main__":
    main()
