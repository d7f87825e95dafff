"""Reading a 100 M-token corpus: first (streaming) read and cached second read, time and peak memory.

Writes a synthetic Zipfian corpus (WikiText-103's size: ``--tokens`` training words over
``--vocab-size`` word types, p(rank r) ∝ r^−1.1, 25 words a line; valid and test of 0.2 M words)
into ``--dir`` (default: a temporary directory, removed afterwards), then runs
``quasirnn.data.load_corpus`` twice, each in a fresh process: the first read streams and
encodes the three splits and writes the cache (in a fresh ``$QUASIRNN_CACHE``, removed
afterwards), the second reads the cache. Peak memory is the process's peak resident set
(ru_maxrss), and its growth over the resident set after ``import quasirnn`` (torch included). Goals (issue 18): first read ≤ 2 minutes and ≤ 2 GB peak;
cached read ≤ 10 s.

Usage:
    python benchmarks/corpus_read.py                      # 100 M tokens
    python benchmarks/corpus_read.py --tokens 1000000     # a quick check
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quasirnn.data.synthetic import write_zipf_corpus

READ = """
import json, resource, sys, time, torch
import quasirnn
from quasirnn.data import load_corpus
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
before = rss_mb()
start = time.perf_counter()
corpus = load_corpus(sys.argv[1], dtype=getattr(torch, sys.argv[2]))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "tokens": corpus.train.numel(), "vocab": len(corpus.vocab), "before_mb": before,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def read(directory: Path, dtype: str, cache: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), QUASIRNN_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-c", READ, str(directory), dtype], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    return json.loads(proc.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=100_000_000, help="training words (default: 100 M)")
    p.add_argument("--vocab-size", type=int, default=267_735, help="word types (default: WikiText-103's 267,735)")
    p.add_argument("--dir", type=Path, default=None, help="where to write the corpus (default: a temporary directory)")
    p.add_argument("--dtype", choices=("int64", "int32"), default="int64",
                   help="ids returned by load_corpus (int64: what lm train uses)")
    args = p.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="quasirnn-corpus-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        write_zipf_corpus(directory / "train.txt", args.tokens, vocab_size=args.vocab_size, seed=0)
        for seed, split in enumerate(("valid", "test"), 1):
            write_zipf_corpus(directory / f"{split}.txt", min(200_000, args.tokens), vocab_size=args.vocab_size,
                              seed=seed)
        with (directory / "train.txt").open("a") as f:
            f.write("<unk>\n")  # valid/test words unseen in train map to it
        written = time.perf_counter() - start
        size_mb = (directory / "train.txt").stat().st_size / 2**20
        cache = Path(tempfile.mkdtemp(prefix="quasirnn-cache-"))  # a fresh user cache: the first read is cold
        try:
            first = read(directory, args.dtype, cache)
            second = read(directory, args.dtype, cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    print(f"corpus: {first['tokens']:,} training tokens (<eos> included), {first['vocab']:,} word types, "
          f"train file {size_mb:,.0f} MB, written in {written:.0f} s; ids as {args.dtype}")
    print()
    print("| read | seconds | peak RSS MB | growth MB |")
    print("|---|---|---|---|")
    for name, r in (("first (stream + encode + write cache)", first), ("second (cache)", second)):
        print(f"| {name} | {r['seconds']:.1f} | {r['peak_mb']:,.0f} | {r['peak_mb'] - r['before_mb']:,.0f} |")


if __name__ == "__main__":
    main()
