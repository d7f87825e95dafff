"""Parallel text for character-level translation (QRNN §3.3; Multi30k stands in for IWSLT).

A corpus directory holds one file per split and language, ``{split}.{lang}``, optionally gzip
compressed (``{split}.{lang}.gz``, the layout of Multi30k's ``data/task1/raw``). Line i of the
source file pairs with line i of the target file. The text is raw (cased, untokenized): a
model reads and writes characters, so its output is already detokenized text.

The character vocabulary (:class:`quasirnn.data.vocabulary.CharVocab`) is built from the
training split of one language; any character it does not contain (at validation, test or
inference time) maps to ``<unk>``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from quasirnn.data.vocabulary import CharVocab
from quasirnn.errors import DataError

__all__ = [
    "ParallelSplit",
    "find_parallel_file",
    "read_lines",
    "read_parallel",
]

PathLike = Union[str, Path]

def read_lines(path: PathLike) -> list[str]:
    """The lines of a UTF-8 text file, gzip-compressed when its name ends in ``.gz``.

    Line ends (``\\n``, ``\\r\\n``) are removed; nothing else is changed.

    Raises:
        DataError: the file is missing, not valid gzip, or not UTF-8 (the message names it).

    Example::

        >>> import gzip, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "train.de.gz"
        >>> with gzip.open(path, "wt", encoding="utf-8") as f:
        ...     _ = f.write("Ein Hund.\\r\\nZwei Katzen.\\n")
        >>> read_lines(path)
        ['Ein Hund.', 'Zwei Katzen.']
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

    Example::

        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "val.en").write_text("A dog.\\n")
        >>> find_parallel_file(d, "val", "en").name
        'val.en'
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

    Example::

        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "train.de").write_text("Ein Hund.\\nZwei Katzen.\\n")
        >>> _ = (d / "train.en").write_text("A dog.\\nTwo cats.\\n")
        >>> read_parallel(d / "train.de", d / "train.en", limit=1)
        (['Ein Hund.'], ['A dog.'])
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


@dataclass
class ParallelSplit:
    """One split: the raw sentences and their ids.

    Attributes:
        src_text, tgt_text: the raw lines (references for BLEU are ``tgt_text``).
        src, tgt: ids per sentence; ``src`` without specials, ``tgt`` ending in ``<eos>``
            (the decoder reads ``<bos>`` + tgt[:-1] and predicts ``tgt``).

    Example::

        >>> src, tgt = ["ab", "abc"], ["x", "xyz"]
        >>> split = ParallelSplit.encode(src, tgt, CharVocab.build(src), CharVocab.build(tgt), max_len=3)
        >>> split.src_text, split.src, split.tgt  # "xyz" + <eos> is longer than 3: dropped
        (['ab'], [[4, 5]], [[4, 2]])
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
