"""One-pass corpus encoding into int32 ids, and its on-disk cache (corpora of 100 M tokens).

:func:`encode_stream` reads a split in blocks of whole lines and maps each block's tokens to
ids with the vocabulary's dict in C (``map``), appending them to an ``array('i')``: no list of
all the token strings is ever built, and memory stays about the encoded array (4 bytes a token)
plus one block. The ids are exactly those of :func:`quasirnn.data.lm_corpus.read_tokens` followed by
a vocabulary lookup (one ``<eos>`` per line; universal newlines, as ``Path.read_text``).

:func:`cached_encode` keeps the result in a cache file keyed by the text file's content, its size
and BLAKE2b hash (and, for valid/test, by the training split's key, whose vocabulary they use), so
a changed file is encoded again, never served from a stale cache. Cache files live in the user
cache only (:func:`quasirnn.data.paths.corpora_cache_dir`: ``$QUASIRNN_CACHE/corpora``, else
``~/.cache/quasirnn/corpora``), never in the data's directory. They are written atomically (a
temporary file, then ``os.replace``); an unreadable one is ignored and rewritten; a cache
directory that cannot be written only costs the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from array import array
from itertools import repeat
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor

from quasirnn.data.paths import corpora_cache_dir
from quasirnn.data.vocabulary import EOS_TOKEN, UNK_TOKEN
from quasirnn.errors import DataError

__all__ = ["encode_stream", "file_key", "cached_encode"]

PathLike = Union[str, Path]

#: Bump when the encoding changes, so that old cache files are not used.
_FORMAT = 1
_BLOCK = 1 << 20  # characters read per block of lines


class _Growing(dict):
    """A word → id dict that gives an unseen word the next id (``map(d.__getitem__, …)`` stays in C)."""

    def __missing__(self, word: str) -> int:
        idx = self[word] = len(self)
        return idx


def encode_stream(path: PathLike, stoi: dict[str, int], *, grow: bool = False) -> Tensor:
    """Reads ``path`` in one pass and encodes its tokens (``<eos>`` after every line) with ``stoi``.

    Args:
        path: a whitespace-tokenized UTF-8 text file, one sentence per line.
        stoi: the word → id dict; with ``grow=True`` unseen words are added to it, in order of
            first appearance, with the next ids (the training split).
        grow: add unseen words instead of mapping them to ``<unk>``.

    Returns:
        An IntTensor (N,) of int32 ids, N = tokens including one ``<eos>`` per line.

    Raises:
        DataError: the file cannot be read, is not UTF-8, holds no token, or (``grow=False``)
            has a word that ``stoi`` lacks while ``stoi`` has no ``<unk>``.

    Example::

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "train.txt"
        >>> _ = path.write_text("a b\\nb c\\n")
        >>> stoi = {}
        >>> encode_stream(path, stoi, grow=True).tolist(), stoi
        ([0, 1, 2, 1, 3, 2], {'a': 0, 'b': 1, '<eos>': 2, 'c': 3})
    """
    path = Path(path)
    ids = array("i")
    words = _Growing(stoi) if grow else stoi
    unk = stoi.get(UNK_TOKEN)
    ended = True  # the text so far ends with a newline (or is empty)
    blank = True  # no token so far
    try:
        with open(path, encoding="utf-8") as f:  # universal newlines, as Path.read_text
            while True:
                lines = f.readlines(_BLOCK)  # whole lines, about _BLOCK characters
                if not lines:
                    break
                block = "".join(lines)
                del lines
                ended = block.endswith("\n")
                blank = blank and block.isspace()
                _extend(ids, block.replace("\n", f" {EOS_TOKEN} ").split(), words, grow, unk, path)
                del block
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if blank:
        raise DataError(f"{path} is empty: expected one sentence per line, tokens separated by spaces")
    if not ended:  # the last line has no newline: it still ends a sentence
        _extend(ids, [EOS_TOKEN], words, grow, unk, path)
    if grow:
        stoi.clear()
        stoi.update(words)
    return torch.frombuffer(ids, dtype=torch.int32)


def _extend(ids: array, tokens: list[str], words: dict[str, int], grow: bool, unk: Optional[int], path: Path) -> None:
    """Appends the ids of ``tokens`` to ``ids`` (the lookups run in C through ``map``)."""
    if grow:
        ids.extend(map(words.__getitem__, tokens))
        return
    try:
        ids.extend(map(words.get, tokens, repeat(unk)))
    except TypeError:  # a None: an unknown word and no <unk>
        word = next(t for t in tokens if t not in words)
        raise DataError(
            f"{path}: word {word!r} is not in the training vocabulary, which has no {UNK_TOKEN} token to map it to"
        ) from None


def file_key(path: PathLike, chunk_size: int = 1 << 23) -> str:
    """``"{size}-{hash}"``: the file's size in bytes and the first 20 hex digits of its BLAKE2b hash.

    Raises:
        DataError: the file cannot be read.

    Example::

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "train.txt"
        >>> _ = path.write_text("a b\\n")
        >>> size, digest = file_key(path).split("-")
        >>> size, len(digest)
        ('4', 20)
    """
    path = Path(path)
    digest = hashlib.blake2b(digest_size=10)
    try:
        with open(path, "rb") as f:
            size = 0
            while chunk := f.read(chunk_size):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return f"{size}-{digest.hexdigest()}"


def _read_cache(path: Path) -> Optional[dict]:
    try:
        data = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign cache file is rewritten
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("ids"), Tensor):
        return None
    return data


def _write_cache(path: Path, data: dict) -> None:
    """Writes ``data`` to ``path`` atomically; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def cached_encode(path: PathLike, stoi: dict[str, int], *, grow: bool = False, parent_key: str = "",
                  cache: bool = True) -> tuple[Tensor, str]:
    """:func:`encode_stream` through the on-disk cache (see the module docstring).

    Args:
        path: the split's text file.
        stoi: as in :func:`encode_stream`; with ``grow=True`` it must be empty, and is filled
            with the vocabulary of the file (from the cache on a hit).
        grow: the training split (its cache file also holds the vocabulary).
        parent_key: the key of the split whose vocabulary ``stoi`` is (valid/test: the
            training split's key), part of this split's key.
        cache: read and write the cache (in the user cache, never beside ``path``); False
            encodes every time.

    Returns:
        (IntTensor (N,) of int32 ids, this split's key: pass it as ``parent_key`` of the others).

    Raises:
        DataError: see :func:`encode_stream`; ``grow=True`` with a non-empty ``stoi``.
    """
    path = Path(path)
    if grow and stoi:
        raise DataError("cached_encode(grow=True) builds the vocabulary: pass an empty stoi")
    key = file_key(path) + (f"-{hashlib.blake2b(parent_key.encode(), digest_size=6).hexdigest()}" if parent_key else "")
    cache_file = corpora_cache_dir() / f"{path.name}.{key}.v{_FORMAT}.pt"
    if cache:
        data = _read_cache(cache_file) if cache_file.is_file() else None
        if data is not None and (not grow or isinstance(data.get("vocab"), list)):
            if grow:
                stoi.update((w, i) for i, w in enumerate(data["vocab"]))
            return data["ids"], key
    ids = encode_stream(path, stoi, grow=grow)
    if cache:
        data = {"format": _FORMAT, "ids": ids, "source": path.name}
        if grow:
            data["vocab"] = list(stoi)
        _write_cache(cache_file, data)
    return ids, key
