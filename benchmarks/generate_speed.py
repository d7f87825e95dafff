"""Text generation speed: per-word latency at B = 1, and ``quasirnn lm generate``'s time to its first word.

1. Per word: ``LanguageModel.generate`` of the default ``lm train`` model (LMConfig's sizes,
   random weights, a 10,000-word vocabulary as PTB's, the softmax ``lm train`` picks for it:
   adaptive, with the cutoffs it picks for Zipf-distributed counts; ``--softmax full``), one thread, sampling
   at temperature 1 (the command's default); ms from one word to the next, the median of
   ``--words`` words after ``--warmup``, then the median over ``--rounds`` rounds taken
   round-robin over the cells (so that other load on the machine falls on all of them). The
   QRNN and SRU run with the pure-PyTorch recurrence (``torch``: what ``lm generate`` uses) and
   with the default kernels (``auto``: numba on the CPU); the weights in float32 (``lm generate``'s
   default), in float16 (``--dtype float16``) and, with the default kernels, int8
   (``--quantize int8``: :func:`quasirnn.quantize`, every ``nn.Linear`` as torch.ao's dynamic int8
   Linear). Beside each: its weights in MB and the
   "weight-read floor", the time to multiply every weight matrix by a vector once (``torch.mv``),
   which a step cannot go below: at B = 1 a step reads all its weights for a few flops each.
2. First word: wall-clock seconds from starting ``python -m quasirnn lm generate --checkpoint RUN
   --prompt ... --threads 1`` to its first byte on stdout, on a tiny saved run and on one of the
   default size, after an untimed run (warm caches); beside them, a fresh interpreter's
   ``import torch`` and ``import quasirnn.cli.main``, the floors of any command.

Usage:
    python benchmarks/generate_speed.py                       # the default model, 200 words, 5 rounds
    python benchmarks/generate_speed.py --size 16,24,2 --vocab 50 --words 20 --rounds 1 --runs 1   # quick
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from quasirnn import quantize
from quasirnn.checkpoint_file import save_checkpoint
from quasirnn.experiments.language_model import KIND, LMConfig, build_model
from quasirnn.models import default_cutoffs

#: (cell, recurrence backend, weights' dtype) rows of the per-word table.
ROWS = (("qrnn", "torch", "float32"), ("qrnn", "auto", "float32"), ("qrnn", "torch", "float16"),
        ("qrnn", "auto", "int8"), ("sru", "torch", "float32"), ("sru", "auto", "float32"),
        ("sru", "torch", "float16"), ("sru", "auto", "int8"), ("lstm", "auto", "float32"),
        ("lstm", "auto", "float16"), ("lstm", "auto", "int8"))
PROMPT = "the company said it expects"


def softmax_options(softmax: str, vocab: int) -> dict:
    """The model section's softmax and cutoffs: adaptive with :func:`default_cutoffs` of counts 1/rank
    (a Zipf corpus), or full where those give no split (a small vocabulary) or ``softmax`` is "full"."""
    cutoffs = default_cutoffs(1.0 / torch.arange(1, vocab + 1)) if softmax == "adaptive" else []
    return {"softmax": "adaptive", "cutoffs": cutoffs} if cutoffs else {"softmax": "full", "cutoffs": None}


def make_model(cell: str, backend: str, dtype: str, size: tuple[int, int, int], vocab: int,
               output: dict) -> torch.nn.Module:
    """The default model of ``size`` with random weights; ``output``: its softmax and cutoffs (:func:`softmax_options`)."""
    model = LMConfig().model
    emb, hidden, layers = size
    options = dataclasses.replace(model, cell=cell, backend=backend, emb_size=emb, hidden_size=hidden,
                                  num_layers=layers, **output)
    model = build_model(options, vocab).eval()
    return quantize(model, "int8") if dtype == "int8" else model.to(getattr(torch, dtype))


def word_times(model, prompt: list[int], words: int, warmup: int, sampling: dict) -> float:
    """Median ms between consecutive words of one ``generate`` call, after ``warmup`` words."""
    gaps = []
    last = time.perf_counter()
    for _ in model.generate(prompt, warmup + words, generator=torch.Generator().manual_seed(0), **sampling):
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    return statistics.median(gaps[warmup:]) * 1e3


def weight_floor(model, repeat: int = 50) -> tuple[float, float]:
    """(ms to multiply each weight matrix by a vector once, median of ``repeat``; the matrices' MB).
    Of an int8 model, only its float matrices (the embedding) are parameters: its rows print none."""
    mats = {id(p): p.detach() for p in model.parameters() if p.dim() == 2}.values()  # a tied matrix once
    vectors = [torch.randn(m.shape[1], dtype=m.dtype) for m in mats]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for m, v in zip(mats, vectors):
            torch.mv(m, v)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, sum(m.numel() * m.element_size() for m in mats) / 1e6


def per_word(args, size) -> None:
    torch.manual_seed(0)
    chosen = softmax_options(args.softmax, args.vocab)
    models = {row: make_model(*row, size, args.vocab, chosen) for row in ROWS}
    prompt = torch.randint(0, args.vocab, (5,)).tolist()
    sampling = {"top_k": args.top_k, "top_p": args.top_p}
    times = {row: [] for row in ROWS}
    for _ in range(args.rounds):
        for row, model in models.items():
            times[row].append(word_times(model, prompt, args.words, args.warmup, sampling))
    print(f"Per-word latency, B = 1, {torch.get_num_threads()} thread(s): (E, H, L) = {size}, vocabulary "
          f"{args.vocab:,}, {chosen['softmax']} softmax (cutoffs {chosen['cutoffs']}), temperature 1, top-k {args.top_k}, top-p {args.top_p}; median of "
          f"{args.words} words after {args.warmup}, median of {args.rounds} rounds\n")
    print("| cell | recurrence | weights | parameters | weights MB | weight-read floor ms | ms/word |")
    print("|---|---|---|---|---|---|---|")
    for (cell, backend, dtype), model in models.items():
        kernel = "n/a (nn.LSTM)" if cell == "lstm" else backend
        sizes = "- | - | -" if dtype == "int8" else "{:.2f} M | {:.1f} | {:.2f}".format(
            model.num_parameters() / 1e6, *reversed(weight_floor(model)))
        print(f"| {cell} | {kernel} | {dtype} | {sizes} | {statistics.median(times[(cell, backend, dtype)]):.2f} |")


def save_run(directory: Path, size: tuple[int, int, int], vocab: int, softmax: str) -> Path:
    """A run directory holding a qrnn checkpoint of ``size`` with random weights, as ``lm train`` saves one."""
    emb, hidden, layers = size
    config = LMConfig().replace(emb_size=emb, hidden_size=hidden, num_layers=layers, **softmax_options(softmax, vocab))
    torch.manual_seed(0)
    model = build_model(config.model, vocab)
    words = ["<eos>", "<unk>"] + [w for w in PROMPT.split()] + [f"w{i}" for i in range(vocab - 2 - len(PROMPT.split()))]
    directory.mkdir(parents=True)
    save_checkpoint(directory / "checkpoint.pt", KIND, config.to_dict(), model=model.state_dict(), vocab=words)
    return directory


def first_byte_seconds(command: list[str]) -> float:
    """Seconds from starting ``command`` to its first byte on stdout (it must print one)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(1)
    seconds = time.perf_counter() - start
    proc.stdout.read()
    err = proc.stderr.read()
    if proc.wait() != 0 or not first:
        raise SystemExit(f"generate_speed: {' '.join(command)} failed: {err.decode()}")
    return seconds


def first_word(args) -> None:
    python = [sys.executable]
    floors = {"fresh interpreter: import torch": python + ["-c", "import torch; print(1)"],
              "fresh interpreter: import quasirnn.cli.main": python + ["-c", "import quasirnn.cli.main; print(1)"]}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {"tiny run (16, 24, 2), 100 words": ((16, 24, 2), 100),
                 f"default-size run {tuple(args.size)}, {args.vocab:,} words": (tuple(args.size), args.vocab)}
        for name, (size, vocab) in sizes.items():
            run = save_run(Path(tmp) / f"run{len(rows)}", size, vocab, args.softmax)
            rows[f"lm generate, {name}"] = python + ["-m", "quasirnn", "lm", "generate", "--checkpoint", str(run),
                                                     "--prompt", PROMPT, "--words", "5", "--seed", "0",
                                                     "--threads", "1"]
        rows.update(floors)
        seconds = {name: [] for name in rows}
        for command in rows.values():
            first_byte_seconds(command)  # warm caches (files, numba's if anything compiles)
        for _ in range(args.runs):
            for name, command in rows.items():
                seconds[name].append(first_byte_seconds(command))
    print(f"\nSeconds from the command's start to its first word on stdout ({args.runs} runs, warm caches)\n")
    print("| command | min | median | max |")
    print("|---|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {max(values):.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = LMConfig().model
    p.add_argument("--size", default=f"{defaults.emb_size},{defaults.hidden_size},{defaults.num_layers}",
                   help="E,H,L of the per-word models and the default-size run (default: LMConfig's)")
    p.add_argument("--vocab", type=int, default=10_000, help="vocabulary size (default: 10,000, PTB's)")
    p.add_argument("--softmax", choices=("adaptive", "full"), default="adaptive",
                   help="output layer (default: adaptive, lm train's choice from 10,000 words)")
    p.add_argument("--words", type=int, default=200, help="timed words per round")
    p.add_argument("--warmup", type=int, default=20, help="untimed words first")
    p.add_argument("--rounds", type=int, default=5, help="round-robin rounds over the cells")
    p.add_argument("--runs", type=int, default=5, help="timed processes per first-word row (0 skips the table)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the per-word table (default: 1)")
    args = p.parse_args()
    args.size = [int(v) for v in args.size.split(",")]
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n")
    per_word(args, tuple(args.size))
    if args.runs:
        first_word(args)


if __name__ == "__main__":
    main()
