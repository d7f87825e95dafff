"""Parallel text for character-level translation (QRNN §3.3; Multi30k stands in for IWSLT).

A corpus directory holds one file per split and language, ``{split}.{lang}``, optionally gzip
compressed (``{split}.{lang}.gz``, the layout of Multi30k's ``data/task1/raw``). Line i of the
source file pairs with line i of the target file. The text is raw (cased, untokenized): a
model reads and writes characters, so its output is already detokenized text.

The character vocabulary is built from the training split of one language and has four
special symbols, ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3; any character it
does not contain (at validation, test or inference time) maps to ``<unk>``.
"""

from __future__ import annotations

import gzip
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor

from quasirnn.errors import DataError

__all__ = [
    "PAD",
    "BOS",
    "EOS",
    "UNK",
    "CharVocab",
    "ParallelSplit",
    "find_parallel_file",
    "read_lines",
    "read_parallel",
    "pad_batch",
    "length_batches",
]

PathLike = Union[str, Path]

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


def read_lines(path: PathLike) -> list[str]:
    """The lines of a UTF-8 text file, gzip-compressed when its name ends in ``.gz``.

    Line ends (``\\n``, ``\\r\\n``) are removed; nothing else is changed.

    Raises:
        DataError: the file is missing, not valid gzip, or not UTF-8 (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
                text = f.read()
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: not a readable gzip or text file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def find_parallel_file(directory: PathLike, split: str, lang: str) -> Path:
    """``DIR/{split}.{lang}.gz`` or ``DIR/{split}.{lang}``, whichever exists (gzip first).

    Raises:
        DataError: neither exists (the message names both and the directory).
    """
    directory = Path(directory)
    for name in (f"{split}.{lang}.gz", f"{split}.{lang}"):
        if (directory / name).is_file():
            return directory / name
    if not directory.is_dir():
        raise DataError(f"{directory}: no such data directory (expected files {split}.{lang}.gz or {split}.{lang})")
    raise DataError(f"{directory}: no {split}.{lang}.gz nor {split}.{lang}")


def read_parallel(src_path: PathLike, tgt_path: PathLike, limit: Optional[int] = None) -> tuple[list[str], list[str]]:
    """The sentence pairs of two aligned files (line i of one translates line i of the other).

    Args:
        src_path, tgt_path: text files, gzip when named ``*.gz``.
        limit: read only the first ``limit`` pairs (None: all).

    Returns:
        (source lines, target lines), equally long.

    Raises:
        DataError: a file is unreadable; the line counts differ (both files and counts named);
            a line is empty or only whitespace (file and 1-based line number named).
    """
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(f"parallel files differ in length: {src_path} has {len(src)} lines, "
                        f"{tgt_path} has {len(tgt)}")
    if limit is not None:
        src, tgt = src[:limit], tgt[:limit]
    for path, lines in ((src_path, src), (tgt_path, tgt)):
        for number, line in enumerate(lines, 1):
            if not line.strip():
                raise DataError(f"{path}: line {number} is empty (every line must hold a sentence)")
    return src, tgt


class CharVocab:
    """Characters ↔ ids, with ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then characters.

    Args:
        chars: the characters of the vocabulary (after the four specials), in id order; each a
            one-character string, no duplicates.

    Raises:
        ValueError: an entry is not a single character, or appears twice.
    """

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars = chars
        self.itos = list(SPECIALS) + chars
        self.stoi = {ch: i + len(SPECIALS) for i, ch in enumerate(chars)}

    @classmethod
    def build(cls, lines: Iterable[str], min_count: int = 1) -> "CharVocab":
        """The characters seen at least ``min_count`` times in ``lines``, most frequent first (ties by code point)."""
        counts = Counter()
        for line in lines:
            counts.update(line)
        chars = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        return cls(chars)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Ids of the characters of ``text`` (unknown ones → ``<unk>``), framed by ``<bos>``/``<eos>`` when asked."""
        ids = [self.stoi.get(ch, UNK) for ch in text]
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: stops at the first ``<eos>``, skips ``<pad>``/``<bos>``, writes ``<unk>`` as U+FFFD."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.itos[i] if i >= len(SPECIALS) and i < len(self.itos) else "\ufffd")
        return "".join(out)


@dataclass
class ParallelSplit:
    """One split: the raw sentences and their ids.

    Attributes:
        src_text, tgt_text: the raw lines (references for BLEU are ``tgt_text``).
        src, tgt: ids per sentence; ``src`` without specials, ``tgt`` ending in ``<eos>``
            (the decoder reads ``<bos>`` + tgt[:-1] and predicts ``tgt``).
    """

    src_text: list[str]
    tgt_text: list[str]
    src: list[list[int]]
    tgt: list[list[int]]

    @classmethod
    def encode(cls, src_text: list[str], tgt_text: list[str], src_vocab: CharVocab, tgt_vocab: CharVocab,
               max_len: Optional[int] = None) -> "ParallelSplit":
        """Encodes the pairs; with ``max_len`` drops pairs whose source or target (with ``<eos>``) is longer."""
        pairs = [(s, t, src_vocab.encode(s), tgt_vocab.encode(t, eos=True)) for s, t in zip(src_text, tgt_text)]
        if max_len is not None:
            pairs = [p for p in pairs if len(p[2]) <= max_len and len(p[3]) <= max_len]
        return cls([p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs], [p[3] for p in pairs])

    def __len__(self) -> int:
        return len(self.src)

    def num_chars(self) -> int:
        """Source characters plus target characters (``<eos>`` included) of the whole split."""
        return sum(map(len, self.src)) + sum(map(len, self.tgt))


def pad_batch(seqs: Sequence[Sequence[int]], device: Union[str, torch.device] = "cpu") -> tuple[Tensor, Tensor]:
    """Right-pads id lists into a time-major batch.

    Returns:
        (ids LongTensor (T, B) padded with ``<pad>`` = 0, lengths LongTensor (B,)).

    Raises:
        ValueError: an empty batch or an empty sequence.
    """
    if not seqs or min(map(len, seqs)) == 0:
        raise ValueError("pad_batch needs at least one sequence, each of length >= 1")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((int(lengths.max()), len(seqs)), PAD, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[: len(s), b] = torch.tensor(s, dtype=torch.long)
    return ids.to(device), lengths.to(device)


def length_batches(lengths: Sequence[int], batch_size: int, shuffle: bool = False,
                   rng: Optional[random.Random] = None, bucket: int = 50) -> list[list[int]]:
    """Batches of indices of sequences of similar lengths (less padding, faster steps).

    Without ``shuffle`` the indices are sorted by length and cut into consecutive batches. With
    ``shuffle`` the indices are shuffled, sorted by length within chunks of ``bucket`` batches,
    cut into batches, and the batches shuffled: every epoch sees different batches.

    Args:
        lengths: one length per sequence (the sort key).
        batch_size: B ≥ 1, sequences per batch (the last batch may be smaller).
        shuffle, rng: shuffle with ``rng`` (a ``random.Random``; a fresh one when None).
        bucket: batches per sorting chunk when shuffling.

    Returns:
        list of lists of indices, covering every index exactly once.

    Raises:
        ValueError: batch_size < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(lengths)))
    if not shuffle:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = rng or random.Random()
    rng.shuffle(order)
    chunk = batch_size * bucket
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def batch_iter(split: ParallelSplit, indices: Sequence[Sequence[int]],
               device: Union[str, torch.device] = "cpu") -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Padded (src (S, B), src_lengths (B,), tgt (T, B), tgt_lengths (B,)) for each batch of indices."""
    for idx in indices:
        src, src_len = pad_batch([split.src[i] for i in idx], device)
        tgt, tgt_len = pad_batch([split.tgt[i] for i in idx], device)
        yield src, src_len, tgt, tgt_len
