"""Reading the IMDb movie-review sentiment corpus (Maas et al. 2011; QRNN paper §3.1).

:func:`read_imdb` takes the labeled archive as distributed (``aclImdb_v1.tar.gz``, or the
project's ``aclImdb_labeled.tar.xz``; read with the standard :mod:`tarfile`, nothing is
extracted), an extracted ``aclImdb/`` directory, or a directory holding either
(:func:`find_imdb`). Reviews are the members ``…/{train,test}/{neg,pos}/<id>_<rating>.txt``:
the original 25,000 / 25,000 split, balanced between negative (label 0, ratings ≤ 4) and
positive (label 1, ratings ≥ 7). ``train/unsup`` and the other files are ignored.

Turning reviews into ids is :mod:`quasirnn.data.imdb`'s job.
"""

from __future__ import annotations

import lzma
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from quasirnn.errors import DataError

__all__ = ["LABELS", "IMDB_SPLITS", "Review", "find_imdb", "read_imdb"]

PathLike = Union[str, Path]

#: Class names; a review's label is the index (0 = negative, 1 = positive).
LABELS = ("neg", "pos")
#: The labeled splits of the archive.
IMDB_SPLITS = ("train", "test")

_MEMBER = re.compile(r"(?:^|/)(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")
_EXPECTED = "aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt"
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")


@dataclass(frozen=True)
class Review:
    """One labeled review.

    Attributes:
        text: the review as in the file (HTML ``<br />`` tags included).
        label: 0 (negative) or 1 (positive); ``LABELS[label]`` is the folder name.
        split: ``"train"`` or ``"test"``.
        id: the number before the underscore in the file name.
        rating: the star rating after the underscore (1–4 negative, 7–10 positive).

    Example::

        >>> review = Review("A great film!", 1, "train", 12, 9)
        >>> LABELS[review.label]
        'pos'
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

    Example::

        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()) / "aclImdb"
        >>> for folder in ("train/neg", "train/pos", "test/neg", "test/pos"):
        ...     (root / folder).mkdir(parents=True)
        >>> find_imdb(root.parent) == root
        True
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

    Example::

        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()) / "aclImdb"
        >>> for split in IMDB_SPLITS:
        ...     for label in LABELS:
        ...         (root / split / label).mkdir(parents=True)
        ...         _ = (root / split / label / "0_5.txt").write_text(f"a {label} review")
        >>> reviews = read_imdb(root)
        >>> [(r.split, r.label, r.text) for r in reviews["test"]]
        [('test', 0, 'a neg review'), ('test', 1, 'a pos review')]
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
