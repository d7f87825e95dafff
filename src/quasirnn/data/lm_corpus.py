"""Word-level language-modeling corpora in Mikolov's format (Penn Treebank, WikiText).

One sentence per line, tokens separated by whitespace, rare words already replaced by
``<unk>``. Every line, blank lines included, ends with an ``<eos>`` token, as in the
Penn Treebank setup of Mikolov et al. (2010) and the language-modeling experiments of the
QRNN paper (Bradbury et al., 2016, §3.2) and AWD-LSTM (Merity et al., 2017).

A corpus directory holds three splits, ``train``, ``valid`` and ``test``, each in a file
named ``ptb.{split}.txt``, ``{split}.txt`` or ``wiki.{split}.tokens``. The vocabulary is
built from the training split; a word of valid/test that train does not contain is mapped
to ``<unk>`` (or is an error when the vocabulary has no ``<unk>``).

Splits are read in one streaming pass into int32 ids and cached in the user cache (never beside
the data), keyed by each file's size and hash (:mod:`quasirnn.data.stream`), so corpora of 100 M tokens (WikiText-103) load in
seconds from the second run on.

The training stream is cut into B parallel columns by :func:`batchify` (shape (T, B)) and
walked in windows of ``bptt`` steps by :func:`bptt_batches` for truncated backpropagation
through time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import torch
from torch import Tensor

from quasirnn.data.stream import cached_encode, encode_stream
from quasirnn.data.vocabulary import EOS_TOKEN, UNK_TOKEN, Vocabulary
from quasirnn.errors import DataError

__all__ = [
    "SPLITS",
    "SPLIT_FILE_PATTERNS",
    "EOS_TOKEN",
    "UNK_TOKEN",
    "Corpus",
    "find_split_file",
    "has_corpus",
    "read_tokens",
    "encode_file",
    "load_corpus",
    "batchify",
    "get_batch",
    "sample_seq_len",
    "bptt_batches",
]

PathLike = Union[str, Path]

#: The three splits of a language-modeling corpus.
SPLITS = ("train", "valid", "test")
#: File names tried for a split, in order (``{split}`` is one of :data:`SPLITS`).
SPLIT_FILE_PATTERNS = ("ptb.{split}.txt", "{split}.txt", "wiki.{split}.tokens")


def _expected_names(split: str) -> str:
    return ", ".join(p.format(split=split) for p in SPLIT_FILE_PATTERNS)


@dataclass
class Corpus:
    """The three splits of a corpus as id streams, and the vocabulary built from train.

    Attributes:
        train, valid, test: 1-D LongTensors (N_split,) of token ids, ``<eos>`` included.
        vocab: the :class:`Vocabulary` (V words) built from the training split.
        directory: where the files were read from.

    Example::

        >>> import torch
        >>> from quasirnn.data.vocabulary import EOS_TOKEN, UNK_TOKEN, Vocabulary
        >>> corpus = Corpus(torch.tensor([0, 1, 2]), torch.tensor([0]), torch.tensor([1]), Vocabulary(["a", "b", "<eos>"]), Path("."))
        >>> corpus.split("valid").tolist()
        [0]
    """

    train: Tensor
    valid: Tensor
    test: Tensor
    vocab: Vocabulary
    directory: Path

    def split(self, name: str) -> Tensor:
        """Returns the id stream (N,) of split ``name`` (one of :data:`SPLITS`)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)


def find_split_file(directory: PathLike, split: str) -> Path:
    """Returns the file of ``split`` in ``directory``.

    Tries the names of :data:`SPLIT_FILE_PATTERNS` in order (``ptb.{split}.txt``,
    ``{split}.txt``, ``wiki.{split}.tokens``).

    Raises:
        DataError: the directory does not exist, or holds none of the expected names.

    Example::

        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "ptb.train.txt").write_text("a b\\n")
        >>> find_split_file(d, "train").name
        'ptb.train.txt'
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(
            f"data directory {directory} does not exist (or is not a directory); it should hold "
            f"the train/valid/test splits, e.g. {_expected_names('train')}"
        )
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    for pattern in SPLIT_FILE_PATTERNS:
        path = directory / pattern.format(split=split)
        if path.is_file():
            return path
    raise DataError(f"no {split} split in {directory}: expected a file named one of {_expected_names(split)}")


def has_corpus(directory: PathLike) -> bool:
    """True when ``directory`` holds a file for each of train, valid and test.

    Example::

        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for split in SPLITS:
        ...     _ = (d / f"{split}.txt").write_text("a b\\n")
        >>> has_corpus(d), has_corpus(d / "missing")
        (True, False)
    """
    try:
        for split in SPLITS:
            find_split_file(directory, split)
    except DataError:
        return False
    return True


def read_tokens(path: PathLike) -> list[str]:
    """Reads a whitespace-tokenized text file, appending ``<eos>`` (:data:`EOS_TOKEN`) to every line.

    Returns:
        The list of tokens (blank lines give a lone ``<eos>``).

    Raises:
        DataError: the file cannot be read, is not UTF-8, or holds no token.

    Example::

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "train.txt"
        >>> _ = path.write_text("the cat\\n\\nsat\\n")
        >>> read_tokens(path)
        ['the', 'cat', '<eos>', '<eos>', 'sat', '<eos>']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise DataError(f"{path} is empty: expected one sentence per line, tokens separated by spaces")
    tokens: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the newline that ends the last line does not open a new one
        lines.pop()
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS_TOKEN)
    return tokens


def encode_file(path: PathLike, vocab: Vocabulary, *, grow: bool = False) -> Tensor:
    """Reads ``path`` and maps its tokens to ids of ``vocab``, in one streaming pass.

    The ids are those of :func:`read_tokens` looked up in ``vocab``
    (:func:`quasirnn.data.stream.encode_stream`; no list of token strings is built).

    Args:
        path: the text file.
        vocab: the vocabulary; with ``grow=True`` new words are added to it (training split).
        grow: add unseen words instead of mapping them to ``<unk>``.

    Returns:
        A LongTensor (N,) of ids, N = number of tokens including one ``<eos>`` per line.

    Raises:
        DataError: see :func:`read_tokens`; or ``grow=False``, the file has a word that
            ``vocab`` lacks, and ``vocab`` has no ``<unk>``.

    Example::

        >>> import tempfile
        >>> from quasirnn.data.vocabulary import EOS_TOKEN, UNK_TOKEN, Vocabulary
        >>> path = Path(tempfile.mkdtemp()) / "train.txt"
        >>> _ = path.write_text("the cat\\nthe dog\\n")
        >>> vocab = Vocabulary()
        >>> encode_file(path, vocab, grow=True).tolist(), vocab.itos
        ([0, 1, 2, 0, 3, 2], ['the', 'cat', '<eos>', 'dog'])
    """
    stoi = dict(vocab.stoi) if grow else vocab.stoi
    ids = encode_stream(path, stoi, grow=grow)
    if grow:
        for word in list(stoi)[len(vocab):]:
            vocab.add(word)
    return ids.long()


def load_corpus(directory: PathLike, *, cache: bool = True, dtype: torch.dtype = torch.long) -> Corpus:
    """Loads the train/valid/test splits of a word-level corpus directory.

    The vocabulary is built from the training split (ids in order of first appearance);
    valid/test words unseen in train map to ``<unk>``. On the Penn Treebank
    (Mikolov's version) this gives 929,589 training tokens and V = 10,000.

    Args:
        directory: the corpus directory.
        cache: read and write the encoded splits' cache (:func:`quasirnn.data.stream.cached_encode`:
            in ``$QUASIRNN_CACHE/corpora``, else ``~/.cache/quasirnn/corpora``; never beside the data).
        dtype: of the returned ids; ``torch.int32`` keeps the cache's arrays without a copy.

    Returns:
        A :class:`Corpus` of 1-D tensors (N_split,) of ``dtype``.

    Raises:
        DataError: missing directory or split file, empty or unreadable file, or an unknown
            word in valid/test without ``<unk>`` in the vocabulary.

    Example::

        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "train.txt").write_text("a b <unk>\\nb a\\n")
        >>> _ = (d / "valid.txt").write_text("a zebra\\n")
        >>> _ = (d / "test.txt").write_text("b\\n")
        >>> corpus = load_corpus(d, cache=False)
        >>> corpus.vocab.itos, corpus.valid.tolist()  # zebra -> <unk>
        (['a', 'b', '<unk>', '<eos>'], [0, 2, 3])
    """
    directory = Path(directory)
    paths = {split: find_split_file(directory, split) for split in SPLITS}
    stoi: dict[str, int] = {}
    train, key = cached_encode(paths["train"], stoi, grow=True, cache=cache)
    valid, _ = cached_encode(paths["valid"], stoi, parent_key=key, cache=cache)
    test, _ = cached_encode(paths["test"], stoi, parent_key=key, cache=cache)
    return Corpus(train=train.to(dtype), valid=valid.to(dtype), test=test.to(dtype), vocab=Vocabulary.from_stoi(stoi),
                  directory=directory)


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """Cuts an id stream into ``batch_size`` contiguous columns.

    The stream is trimmed to a multiple of B and column b holds tokens
    ``[b*T, (b+1)*T)``, so each column is a continuous piece of text and the hidden state
    can be carried from one BPTT window to the next (Zaremba et al., 2014; QRNN §3.2).

    Args:
        ids: LongTensor (N,).
        batch_size: B ≥ 1.

    Returns:
        LongTensor (T, B) with T = N // B, a view of ``ids`` (no copy).

    Raises:
        ValueError: B < 1, ``ids`` is not 1-D, or N < B.

    Example::

        >>> batchify(torch.arange(10), 3).tolist()
        [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D (N,), got shape {tuple(ids.shape)}")
    steps = ids.size(0) // batch_size
    if steps == 0:
        raise ValueError(f"{ids.size(0)} tokens cannot fill a batch of {batch_size} columns")
    return ids[: steps * batch_size].view(batch_size, steps).t()


def get_batch(source: Tensor, start: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """One BPTT window of a batchified stream.

    Args:
        source: LongTensor (T, B) from :func:`batchify`.
        start: first time step of the window, 0 ≤ start < T − 1.
        seq_len: requested window length; shortened at the end of the stream.

    Returns:
        (inputs, targets), both LongTensors (L, B) with L = min(seq_len, T − 1 − start);
        ``targets[t] = source[start + t + 1]``.

    Example::

        >>> source = batchify(torch.arange(10), 2)  # (5, 2)
        >>> inputs, targets = get_batch(source, 0, 3)
        >>> inputs[:, 0].tolist(), targets[:, 0].tolist()
        ([0, 1, 2], [1, 2, 3])
    """
    length = min(seq_len, source.size(0) - 1 - start)
    return source[start : start + length], source[start + 1 : start + 1 + length]


def sample_seq_len(bptt: int, generator: Optional[torch.Generator] = None) -> int:
    """Variable-length BPTT of AWD-LSTM (Merity et al., 2017, §4.1).

    The base length is ``bptt`` with probability 0.95 and ``bptt / 2`` otherwise; the window
    length is drawn from N(base, 5), at least 5 (or ``bptt`` if smaller) and at most ``2 * bptt``. A training loop scales
    the learning rate by ``seq_len / bptt`` so long and short windows weigh the same.

    Returns:
        The sampled window length (int ≥ 1).

    Example::

        >>> lengths = [sample_seq_len(70, torch.Generator().manual_seed(s)) for s in range(100)]
        >>> 5 <= min(lengths) and max(lengths) <= 140
        True
    """
    base = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
    length = int(round(base + 5.0 * torch.randn((), generator=generator).item()))
    return max(min(5, bptt), min(length, 2 * bptt))


def bptt_batches(
    source: Tensor,
    bptt: int,
    *,
    start: int = 0,
    variable: bool = False,
    generator: Optional[torch.Generator] = None,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Walks a batchified stream in consecutive BPTT windows.

    Args:
        source: LongTensor (T, B) from :func:`batchify`.
        bptt: window length (time steps per batch).
        start: time step to start from (to resume within an epoch).
        variable: sample each window's length with :func:`sample_seq_len` (uses the global
            torch RNG, or ``generator``).

    Yields:
        (position, inputs, targets): ``position`` is the window's first time step; inputs and
        targets are LongTensors (L, B), see :func:`get_batch`.

    Example::

        >>> source = batchify(torch.arange(20), 2)  # (10, 2)
        >>> [(pos, inputs.shape[0]) for pos, inputs, _ in bptt_batches(source, 4)]
        [(0, 4), (4, 4), (8, 1)]
    """
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    pos = start
    while pos < source.size(0) - 1:
        seq_len = sample_seq_len(bptt, generator) if variable else bptt
        inputs, targets = get_batch(source, pos, seq_len)
        yield pos, inputs, targets
        pos += inputs.size(0)
