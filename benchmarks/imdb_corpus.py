"""Writes the IMDb reviews as a word-level language-modeling corpus in the ``{split}.txt`` format.

The 50,000 labeled reviews (Maas et al. 2011; ``quasirnn.data.imdb_reader.read_imdb``, about 12 M word
tokens) are tokenized by ``quasirnn.data.imdb.tokenize`` (lower-case, HTML breaks removed,
punctuation split off), one review per line. ``train.txt`` holds the training reviews but a
validation slice (``split_validation``, its fixed seed), ``valid.txt`` that slice, ``test.txt``
the test reviews. The vocabulary is cut to the ``--vocab-size`` most frequent training words
(default 33,278 with ``<unk>`` and ``<eos>``, WikiText-2's size); every other word becomes
``<unk>``. The corpus goes to ``--out`` (default: ``$XDG_CACHE_HOME/quasirnn/imdb-lm``), never
into the repository.

Usage:
    python benchmarks/imdb_corpus.py [--imdb ../shared/data/imdb] [--out DIR] [--vocab-size 33278]
Prints the directory and the corpus's sizes as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Optional

from quasirnn.data import cache_dir
from quasirnn.data.imdb import split_validation, tokenize
from quasirnn.data.imdb_reader import read_imdb
from quasirnn.data.vocabulary import EOS_TOKEN, UNK_TOKEN

#: Where the corpus is written unless ``--out`` says otherwise.
DEFAULT_OUT = "imdb-lm"


def default_imdb() -> Path:
    """``../shared/data/imdb`` beside the repository (the project's copy of the archive)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb"


def write_imdb_corpus(imdb: Path, out: Path, vocab_size: int = 33_278, val_size: int = 2500,
                      limit: Optional[int] = None) -> dict[str, int]:
    """Writes ``out/{train,valid,test}.txt``; returns the number of word tokens of each split (and ``vocab``)."""
    reviews = read_imdb(imdb, limit=limit)
    train, valid = split_validation(reviews["train"], val_size)
    splits = {"train": train, "valid": valid, "test": reviews["test"]}
    tokens = {name: [tokenize(r.text) for r in items] for name, items in splits.items()}
    counts = Counter(t for review in tokens["train"] for t in review)
    counts.pop(UNK_TOKEN, None)
    counts.pop(EOS_TOKEN, None)
    keep = {w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - 2]}
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, reviews_tokens in tokens.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for review in reviews_tokens:
                f.write(" ".join(t if t in keep else UNK_TOKEN for t in review) + "\n")
        os.replace(tmp, out / f"{name}.txt")
        sizes[name] = sum(len(r) for r in reviews_tokens)
    sizes["vocab"] = len(keep) + 2
    return sizes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imdb", type=Path, default=default_imdb(), help="the IMDb archive or aclImdb/ directory")
    p.add_argument("--out", type=Path, default=None, help=f"output directory (default: the user cache's {DEFAULT_OUT})")
    p.add_argument("--vocab-size", type=int, default=33_278, help="words kept, <unk> and <eos> included")
    p.add_argument("--val-size", type=int, default=2500, help="training reviews moved to valid.txt")
    p.add_argument("--limit", type=int, default=None, help="read only this many reviews per split and label")
    args = p.parse_args()
    out = args.out or cache_dir() / DEFAULT_OUT
    sizes = write_imdb_corpus(args.imdb, out, args.vocab_size, args.val_size, args.limit)
    print(f"wrote {out}")
    print()
    print("| split | word tokens | lines |")
    print("|---|---|---|")
    for name in ("train", "valid", "test"):
        lines = sum(1 for _ in open(out / f"{name}.txt", encoding="utf-8"))
        print(f"| {name} | {sizes[name]:,} | {lines:,} |")
    print(f"\nvocabulary: {sizes['vocab']:,} words (<unk> and <eos> included)")


if __name__ == "__main__":
    main()
