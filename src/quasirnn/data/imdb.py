"""The IMDb movie-review sentiment corpus (Maas et al. 2011) for the QRNN paper's §3.1.

Reading: :func:`read_imdb` takes the labeled archive as distributed (``aclImdb_v1.tar.gz``,
or the project's ``aclImdb_labeled.tar.xz``; read with the standard :mod:`tarfile`, nothing is
extracted), an extracted ``aclImdb/`` directory, or a directory holding either. Reviews are the
members ``…/{train,test}/{neg,pos}/<id>_<rating>.txt``: the original 25,000 / 25,000 split,
balanced between negative (label 0, ratings ≤ 4) and positive (label 1, ratings ≥ 7).
``train/unsup`` and the other files are ignored.

Text → ids: :func:`tokenize` (documented there), :func:`build_vocab` from the training reviews
only, :func:`encode` with a maximum length. :func:`split_validation` carves a validation set out
of the training reviews with a fixed seed, so every run sees the same split.

:func:`load_imdb` does all of this for a classification run and returns an :class:`ImdbData`.

Batches: :class:`EncodedSplit` holds the id sequences and labels of a split;
:meth:`EncodedSplit.batches` groups reviews of similar length (:func:`length_batches`) and pads
them on the right (:func:`pad_batch`) into time-major (T, B) tensors with their lengths.
"""

from __future__ import annotations

import lzma
import re
import tarfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from quasirnn.data.lm_corpus import UNK, Vocabulary
from quasirnn.errors import DataError

__all__ = [
    "LABELS",
    "PAD",
    "IMDB_SPLITS",
    "VAL_SEED",
    "Review",
    "EncodedSplit",
    "ImdbData",
    "find_imdb",
    "load_imdb",
    "read_imdb",
    "tokenize",
    "build_vocab",
    "encode",
    "split_validation",
    "length_batches",
    "pad_batch",
]

PathLike = Union[str, Path]

#: Class names; a review's label is the index (0 = negative, 1 = positive).
LABELS = ("neg", "pos")
#: Padding token; always id 0 of a vocabulary from :func:`build_vocab` (``<unk>`` is id 1).
PAD = "<pad>"
#: The labeled splits of the archive.
IMDB_SPLITS = ("train", "test")
#: Seed of the validation split carved from the training reviews (fixed, independent of --seed).
VAL_SEED = 20111

_MEMBER = re.compile(r"(?:^|/)(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")
_EXPECTED = "aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt"
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")
#: Batches per length-sorted pool in :func:`length_batches`.
POOL_BATCHES = 50


@dataclass(frozen=True)
class Review:
    """One labeled review.

    Attributes:
        text: the review as in the file (HTML ``<br />`` tags included).
        label: 0 (negative) or 1 (positive); ``LABELS[label]`` is the folder name.
        split: ``"train"`` or ``"test"``.
        id: the number before the underscore in the file name.
        rating: the star rating after the underscore (1–4 negative, 7–10 positive).
    """

    text: str
    label: int
    split: str
    id: int
    rating: int


def _is_aclimdb_dir(path: Path) -> bool:
    return all((path / split / label).is_dir() for split in IMDB_SPLITS for label in LABELS)


def find_imdb(path: PathLike) -> Path:
    """Resolves ``--data`` to an archive file or an ``aclImdb`` directory.

    Accepted, in this order: a file (read as a tar archive); a directory with
    ``{train,test}/{neg,pos}/`` (the extracted ``aclImdb/``); a directory holding such an
    ``aclImdb/``; a directory holding exactly one tar archive whose name starts with ``aclImdb``.

    Returns:
        The archive file or the ``aclImdb`` directory.

    Raises:
        DataError: the path does not exist, or the directory holds none of the above.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise DataError(f"IMDb data not found: {path} does not exist (expected aclImdb_labeled.tar.xz, "
                        f"aclImdb_v1.tar.gz or an extracted aclImdb/ directory)")
    if _is_aclimdb_dir(path):
        return path
    if _is_aclimdb_dir(path / "aclImdb"):
        return path / "aclImdb"
    archives = sorted(p for p in path.iterdir() if p.is_file() and p.name.startswith("aclImdb")
                      and p.name.endswith(_ARCHIVE_SUFFIXES))
    if len(archives) == 1:
        return archives[0]
    if len(archives) > 1:
        raise DataError(f"{path} holds several IMDb archives ({', '.join(p.name for p in archives)}); pass one file")
    raise DataError(f"{path} is not IMDb data: expected a directory with train/{{neg,pos}} and test/{{neg,pos}} "
                    f"(an extracted aclImdb/), its parent, or an aclImdb*.tar.* archive")


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _iter_archive(path: Path, limit: Optional[int]) -> Iterator[Review]:
    wanted = {(s, l): 0 for s in IMDB_SPLITS for l in LABELS}
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.ReadError, EOFError, lzma.LZMAError, zlib.error, OSError):
        raise DataError(f"{path} is not a readable tar archive (plain, gzip, xz or bzip2); expected the IMDb archive "
                        f"(aclImdb_labeled.tar.xz or aclImdb_v1.tar.gz) or an extracted aclImdb/ directory") from None
    with archive:
        try:
            for member in archive:
                match = _MEMBER.search(member.name)
                if match is None or not member.isfile():
                    continue
                split, label, rid, rating = match.groups()
                if limit is not None:
                    if wanted[split, label] >= limit:
                        if all(n >= limit for n in wanted.values()):
                            return
                        continue
                    wanted[split, label] += 1
                raw = archive.extractfile(member).read()
                yield Review(_decode(raw, f"{path}:{member.name}"), LABELS.index(label), split, int(rid), int(rating))
        except (tarfile.ReadError, EOFError, lzma.LZMAError, zlib.error, OSError) as exc:
            raise DataError(f"{path} is truncated or corrupted: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _iter_directory(path: Path, limit: Optional[int]) -> Iterator[Review]:
    for split in IMDB_SPLITS:
        for label_id, label in enumerate(LABELS):
            folder = path / split / label
            names = sorted(p.name for p in folder.iterdir() if _MEMBER.search(f"{split}/{label}/{p.name}"))
            for name in names[:limit]:
                match = _MEMBER.search(f"{split}/{label}/{name}")
                file = folder / name
                try:
                    raw = file.read_bytes()
                except OSError as exc:
                    raise DataError(f"cannot read {file}: {exc.strerror or exc}") from None
                yield Review(_decode(raw, str(file)), label_id, split, int(match.group(3)), int(match.group(4)))


def read_imdb(path: PathLike, limit: Optional[int] = None) -> dict[str, list[Review]]:
    """Reads the labeled IMDb reviews (Maas et al. 2011; QRNN paper §3.1).

    Args:
        path: an archive, an ``aclImdb/`` directory or a directory holding one (see
            :func:`find_imdb`).
        limit: read only the first ``limit`` reviews of each split and label, in the archive's
            member order (sorted file names for a directory) — for quick experiments and tests;
            an archive is then read only as far as needed. None reads everything.

    Returns:
        ``{"train": [...], "test": [...]}``: lists of :class:`Review`, each sorted by
        (label, id), so an archive and its extracted directory give identical lists.

    Raises:
        DataError: missing path; a file that is not a tar archive, or is truncated; an archive
            or directory with no reviews of some split and label (not IMDb-shaped); a review
            that is not UTF-8.
    """
    if limit is not None and limit < 1:
        raise DataError(f"the review limit must be >= 1, got {limit}")
    source = find_imdb(path)
    reviews = _iter_directory(source, limit) if source.is_dir() else _iter_archive(source, limit)
    splits: dict[str, list[Review]] = {split: [] for split in IMDB_SPLITS}
    for review in reviews:
        splits[review.split].append(review)
    counts = {f"{s}/{l}": sum(r.label == i for r in splits[s]) for s in IMDB_SPLITS for i, l in enumerate(LABELS)}
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        found = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise DataError(f"{source} is not IMDb-shaped: no reviews under {', '.join(missing)} ({found}); "
                        f"expected files named {_EXPECTED}")
    for split in IMDB_SPLITS:
        splits[split].sort(key=lambda r: (r.label, r.id))
    return splits


# ---------------------------------------------------------------------------- text to ids

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Splits a review into lower-case word and punctuation tokens.

    1. lower-case (Unicode-aware ``str.lower``);
    2. replace the HTML line breaks ``<br />`` (also ``<br>``, ``<br/>``) by spaces;
    3. a token is a run of letters/digits/underscores, possibly with inner apostrophes
       (``don't``, ``director's`` stay whole), or any single other non-space character, so
       punctuation is split off (``"great!!"`` → ``great ! !``).

    Example: ``tokenize("Great film!<br /><br />10/10")`` →
    ``["great", "film", "!", "10", "/", "10"]``.

    Returns:
        The list of tokens (empty for a text without any non-space character).
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
    """
    if max_vocab is not None and max_vocab < 3:
        raise ValueError(f"max_vocab must be >= 3 (<pad>, <unk> and one word), got {max_vocab}")
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    counts.pop(PAD, None)
    counts.pop(UNK, None)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    if max_vocab is not None:
        words = words[: max_vocab - 2]
    return Vocabulary([PAD, UNK, *words])


def encode(tokens: Sequence[str], vocab: Vocabulary, max_len: Optional[int] = None) -> Tensor:
    """Maps tokens to ids (unknown words → ``<unk>``), keeping the first ``max_len`` tokens.

    Returns:
        LongTensor (min(len(tokens), max_len),).
    """
    if max_len is not None:
        tokens = tokens[:max_len]
    unk = vocab.stoi[UNK]
    return torch.tensor([vocab.stoi.get(t, unk) for t in tokens], dtype=torch.long)


def split_validation(reviews: Sequence[Review], val_size: int, seed: int = VAL_SEED) -> tuple[list[Review], list[Review]]:
    """Carves ``val_size`` reviews chosen at random (fixed ``seed``) out of ``reviews``.

    Returns:
        (the remaining reviews, the validation reviews), each in the input's order.

    Raises:
        DataError: ``val_size`` is negative or leaves no training review.
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


def length_batches(lengths: Tensor, batch_size: int, shuffle: bool = False,
                   generator: Optional[torch.Generator] = None, pool: int = POOL_BATCHES) -> list[Tensor]:
    """Groups example indices into batches of similar length (less padding, faster steps).

    Without ``shuffle``: all examples sorted by decreasing length, cut into batches.
    With ``shuffle``: a random permutation is cut into pools of ``pool · batch_size``
    examples, each pool is sorted by length and cut into batches, and the batches are shuffled
    — random batches whose members have similar lengths ("bucketing").

    Args:
        lengths: (N,) lengths of the examples.
        batch_size: B; the last batch of a pool may be smaller.

    Returns:
        A list of LongTensors of indices into the N examples; together a partition of range(N).

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(lengths)
    if not shuffle:
        order = torch.argsort(lengths, descending=True, stable=True)
        return list(order.split(batch_size))
    perm = torch.randperm(n, generator=generator)
    batches = []
    for chunk in perm.split(pool * batch_size):
        chunk = chunk[torch.argsort(lengths[chunk], descending=True, stable=True)]
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def pad_batch(sequences: Sequence[Tensor], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pads 1-D id sequences into a time-major batch.

    Returns:
        (ids LongTensor (T, B) with T the longest length, padded with ``pad_id``;
        lengths LongTensor (B,)).

    Raises:
        ValueError: an empty list or an empty sequence (a classifier needs ≥ 1 step).
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if (lengths == 0).any():
        raise ValueError("every sequence must have at least one token")
    return pad_sequence(list(sequences), padding_value=pad_id), lengths


@dataclass
class EncodedSplit:
    """A split as id sequences: what the classifier trains and evaluates on.

    Attributes:
        ids: list of N LongTensors (n_i,), n_i ≥ 1, the encoded reviews.
        labels: LongTensor (N,) of 0 (negative) / 1 (positive).
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
