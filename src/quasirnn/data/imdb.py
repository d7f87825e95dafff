"""The IMDb corpus as ids for classification (QRNN paper §3.1).

The reviews are read by :mod:`quasirnn.data.imdb_reader` (:func:`read_imdb`). Text → ids here:
:func:`tokenize` (documented there), :func:`build_vocab` from the training reviews only,
:func:`encode` with a maximum length. :func:`split_validation` carves a validation set out of
the training reviews with a fixed seed, so every run sees the same split.

:func:`load_imdb` does all of this for a classification run and returns an :class:`ImdbData`.

Batches: :class:`EncodedSplit` holds the id sequences and labels of a split;
:meth:`EncodedSplit.batches` groups reviews of similar length and pads them on the right
(:mod:`quasirnn.data.batching`) into time-major (T, B) tensors with their lengths.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor

from quasirnn.data.batching import POOL_BATCHES, length_batches, pad_batch
from quasirnn.data.imdb_reader import LABELS, Review, find_imdb, read_imdb
from quasirnn.data.vocabulary import PAD_TOKEN, UNK_TOKEN, Vocabulary
from quasirnn.errors import DataError

__all__ = [
    "VAL_SEED",
    "EncodedSplit",
    "ImdbData",
    "load_imdb",
    "tokenize",
    "build_vocab",
    "encode",
    "split_validation",
]

PathLike = Union[str, Path]

#: Seed of the validation split carved from the training reviews (fixed, independent of --seed).
VAL_SEED = 20111


# ---------------------------------------------------------------------------- text to ids

#: A review's HTML line break (case-insensitive), read as a space, and a token (:func:`tokenize`).
BREAK_PATTERN, TOKEN_PATTERN = r"<br\s*/?>", r"\w+(?:'\w+)*|[^\w\s]"
_BREAK = re.compile(BREAK_PATTERN, re.IGNORECASE)
_TOKEN = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """Splits a review into lower-case word and punctuation tokens.

    1. lower-case (Unicode-aware ``str.lower``);
    2. replace the HTML line breaks ``<br />`` (also ``<br>``, ``<br/>``) by spaces;
    3. a token is a run of letters/digits/underscores, possibly with inner apostrophes
       (``don't``, ``director's`` stay whole), or any single other non-space character, so
       punctuation is split off (``"great!!"`` → ``great ! !``).

    Returns:
        The list of tokens (empty for a text without any non-space character).

    Example::

        >>> tokenize("Great film!<br /><br />10/10, don't miss it")
        ['great', 'film', '!', '10', '/', '10', ',', "don't", 'miss', 'it']
    """
    return _TOKEN.findall(_BREAK.sub(" ", text.lower()))


def build_vocab(token_lists: Iterable[Sequence[str]], max_vocab: Optional[int] = None, min_freq: int = 1) -> Vocabulary:
    """The vocabulary of the training reviews: ``<pad>`` (id 0), ``<unk>`` (id 1), then words.

    Words are ordered by decreasing count, ties alphabetically (deterministic); only words seen
    at least ``min_freq`` times are kept, at most ``max_vocab`` entries in all (specials included).

    Args:
        token_lists: the tokenized training reviews (never validation or test).
        max_vocab: V, the total size cap, ≥ 3; None for no cap.
        min_freq: minimum count of a kept word.

    Returns:
        A :class:`quasirnn.data.Vocabulary`.

    Raises:
        ValueError: ``max_vocab`` < 3 or ``min_freq`` < 1.

    Example::

        >>> vocab = build_vocab([["a", "good", "film"], ["a", "bad", "film"], ["a"]], max_vocab=4)
        >>> vocab.itos
        ['<pad>', '<unk>', 'a', 'film']
    """
    if max_vocab is not None and max_vocab < 3:
        raise ValueError(f"max_vocab must be >= 3 (<pad>, <unk> and one word), got {max_vocab}")
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    counts.pop(PAD_TOKEN, None)
    counts.pop(UNK_TOKEN, None)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    if max_vocab is not None:
        words = words[: max_vocab - 2]
    return Vocabulary([PAD_TOKEN, UNK_TOKEN, *words])


def encode(tokens: Sequence[str], vocab: Vocabulary, max_len: Optional[int] = None) -> Tensor:
    """Maps tokens to ids (unknown words → ``<unk>``), keeping the first ``max_len`` tokens.

    Returns:
        LongTensor (min(len(tokens), max_len),).

    Example::

        >>> vocab = build_vocab([["a", "good", "film"]])
        >>> encode(["a", "bad", "film", "a"], vocab, max_len=3).tolist()  # bad -> <unk> = 1, ties by spelling
        [2, 1, 3]
    """
    if max_len is not None:
        tokens = tokens[:max_len]
    unk = vocab.stoi[UNK_TOKEN]
    return torch.tensor([vocab.stoi.get(t, unk) for t in tokens], dtype=torch.long)


def split_validation(reviews: Sequence[Review], val_size: int, seed: int = VAL_SEED) -> tuple[list[Review], list[Review]]:
    """Carves ``val_size`` reviews chosen at random (fixed ``seed``) out of ``reviews``.

    Returns:
        (the remaining reviews, the validation reviews), each in the input's order.

    Raises:
        DataError: ``val_size`` is negative or leaves no training review.

    Example::

        >>> from quasirnn.data.imdb_reader import Review
        >>> reviews = [Review(f"text {i}", i % 2, "train", i, 1 + 9 * (i % 2)) for i in range(10)]
        >>> train, val = split_validation(reviews, 3)
        >>> len(train), len(val), split_validation(reviews, 3)[1] == val
        (7, 3, True)
    """
    if not 0 <= val_size < len(reviews):
        raise DataError(f"the validation size must be in [0, {len(reviews)}) for {len(reviews)} training reviews, "
                        f"got {val_size}")
    generator = torch.Generator().manual_seed(seed)
    chosen = set(torch.randperm(len(reviews), generator=generator)[:val_size].tolist())
    train = [r for i, r in enumerate(reviews) if i not in chosen]
    val = [r for i, r in enumerate(reviews) if i in chosen]
    return train, val


# ---------------------------------------------------------------------------- batches


@dataclass
class EncodedSplit:
    """A split as id sequences: what the classifier trains and evaluates on.

    Attributes:
        ids: list of N LongTensors (n_i,), n_i ≥ 1, the encoded reviews.
        labels: LongTensor (N,) of 0 (negative) / 1 (positive).

    Example::

        >>> import torch
        >>> split = EncodedSplit([torch.tensor([4, 5, 6]), torch.tensor([7]), torch.tensor([8, 9])], torch.tensor([1, 0, 1]))
        >>> [(ids.shape, lengths.tolist(), labels.tolist()) for ids, lengths, labels in split.batches(2)]
        [(torch.Size([3, 2]), [3, 2], [1, 1]), (torch.Size([1, 1]), [1], [0])]
    """

    ids: list[Tensor]
    labels: Tensor

    @classmethod
    def from_reviews(cls, reviews: Sequence[Review], vocab: Vocabulary, max_len: Optional[int] = None,
                     tokens: Optional[Sequence[Sequence[str]]] = None) -> "EncodedSplit":
        """Tokenizes (unless ``tokens`` are given, one list per review) and encodes ``reviews``.

        Raises:
            DataError: a review without any token.
        """
        if tokens is None:
            tokens = [tokenize(r.text) for r in reviews]
        ids = []
        for review, toks in zip(reviews, tokens):
            if not toks:
                raise DataError(f"review {review.split}/{LABELS[review.label]}/{review.id}_{review.rating}.txt has no text")
            ids.append(encode(toks, vocab, max_len))
        return cls(ids, torch.tensor([r.label for r in reviews], dtype=torch.long))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> Tensor:
        """LongTensor (N,) of sequence lengths."""
        return torch.tensor([len(x) for x in self.ids], dtype=torch.long)

    def num_tokens(self) -> int:
        """Total number of (kept) tokens in the split."""
        return sum(len(x) for x in self.ids)

    def batches(self, batch_size: int, shuffle: bool = False, generator: Optional[torch.Generator] = None,
                start: int = 0) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Padded, length-bucketed batches (see :func:`length_batches`, :func:`pad_batch`).

        Args:
            start: skip the first ``start`` batches of the order (resuming within an epoch;
                the order depends only on ``generator``'s state).

        Yields:
            (ids (T, B) LongTensor right-padded with 0, lengths (B,), labels (B,)).
        """
        lengths = self.lengths
        for index in length_batches(lengths, batch_size, shuffle, generator)[start:]:
            ids, lens = pad_batch([self.ids[i] for i in index.tolist()])
            yield ids, lens, self.labels[index]

    def num_batches(self, batch_size: int) -> int:
        """How many batches :meth:`batches` yields with ``shuffle=True`` (per pool, rounded up)."""
        pool = POOL_BATCHES * batch_size
        full, rest = divmod(len(self), pool)
        return full * -(-pool // batch_size) + -(-rest // batch_size)


@dataclass
class ImdbData:
    """The encoded IMDb splits of a classification run.

    Attributes:
        train, val, test: :class:`EncodedSplit` — train minus the carved-out validation
            reviews, the validation reviews, and the original test set.
        vocab: the vocabulary (built from ``train`` only, unless one was given).
        source: the archive or directory that was read.

    Example::

        >>> import torch
        >>> from quasirnn.data.vocabulary import Vocabulary
        >>> split = EncodedSplit([torch.tensor([2, 3])], torch.tensor([1]))
        >>> data = ImdbData(split, split, split, Vocabulary(["<pad>", "<unk>", "good", "film"]), Path("aclImdb"))
        >>> len(data.train), len(data.vocab)
        (1, 4)
    """

    train: EncodedSplit
    val: EncodedSplit
    test: EncodedSplit
    vocab: Vocabulary
    source: Path


def load_imdb(path: PathLike, max_vocab: Optional[int] = None, max_len: Optional[int] = None, val_size: int = 2500,
              limit: Optional[int] = None, vocab: Optional[Vocabulary] = None) -> ImdbData:
    """Reads, splits, tokenizes and encodes IMDb for classification (QRNN paper §3.1).

    The original 25k train / 25k test split; ``val_size`` training reviews become the
    validation set (:func:`split_validation`, fixed seed :data:`VAL_SEED`); the vocabulary is
    built from the remaining training reviews (:func:`build_vocab`, ``max_vocab``) unless
    ``vocab`` is given (evaluating or resuming a run); every review keeps its first ``max_len``
    tokens.

    Args:
        path: see :func:`find_imdb`.
        limit: see :func:`read_imdb` (first ``limit`` reviews per split and label).

    Returns:
        An :class:`ImdbData`.

    Raises:
        DataError: see :func:`read_imdb`, :func:`split_validation`; a review without any token.

    Example::

        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()) / "aclImdb"
        >>> for split in ("train", "test"):
        ...     for label, text in (("neg", "A dull, bad film."), ("pos", "A great film!")):
        ...         for i in range(3):
        ...             folder = root / split / label
        ...             folder.mkdir(parents=True, exist_ok=True)
        ...             _ = (folder / f"{i}_{1 if label == 'neg' else 9}.txt").write_text(text)
        >>> data = load_imdb(root, val_size=2)
        >>> len(data.train), len(data.val), len(data.test), data.vocab.itos[:4]
        (4, 2, 6, ['<pad>', '<unk>', 'a', 'film'])
    """
    reviews = read_imdb(path, limit)
    train_reviews, val_reviews = split_validation(reviews["train"], val_size)
    train_tokens = [tokenize(r.text) for r in train_reviews]
    if vocab is None:
        vocab = build_vocab(train_tokens, max_vocab)
    return ImdbData(
        train=EncodedSplit.from_reviews(train_reviews, vocab, max_len, tokens=train_tokens),
        val=EncodedSplit.from_reviews(val_reviews, vocab, max_len),
        test=EncodedSplit.from_reviews(reviews["test"], vocab, max_len),
        vocab=vocab,
        source=find_imdb(path),
    )
