"""Synthetic Zipfian word-level corpora in the ``{split}.txt`` format, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

__all__ = ["write_zipf_corpus"]


def write_zipf_corpus(path: Union[str, Path], tokens: int, *, vocab_size: int = 50_000, exponent: float = 1.1,
                      line_length: int = 25, seed: int = 0, chunk: int = 1 << 20) -> Path:
    """Writes ``tokens`` words drawn from a Zipf law (p(rank r) ∝ r^−exponent) to ``path``.

    Words are ``w{rank}``, ``line_length`` to a line; the file is written in chunks of
    ``chunk`` words, so memory stays small whatever ``tokens`` is.

    Returns:
        ``path`` (a Path). The file holds ``tokens`` words (its encoding adds one ``<eos>`` per line).

    Raises:
        ValueError: ``tokens``, ``vocab_size`` or ``line_length`` < 1.

    Example::

        >>> import tempfile
        >>> p = write_zipf_corpus(Path(tempfile.mkdtemp()) / "train.txt", 100, vocab_size=10)
        >>> len(p.read_text().split())
        100
    """
    for name, value in (("tokens", tokens), ("vocab_size", vocab_size), ("line_length", line_length)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    path = Path(path)
    gen = torch.Generator().manual_seed(seed)
    probs = torch.arange(1, vocab_size + 1, dtype=torch.float64).pow(-exponent)
    words = [f"w{r}" for r in range(vocab_size)]
    chunk -= chunk % line_length
    with open(path, "w", encoding="utf-8") as f:
        done = 0
        while done < tokens:
            n = min(chunk, tokens - done)
            ids = torch.multinomial(probs, n, replacement=True, generator=gen).tolist()
            ws = [words[i] for i in ids]
            f.write("\n".join(" ".join(ws[i : i + line_length]) for i in range(0, n, line_length)) + "\n")
            done += n
    return path
