"""Where quasirnn looks for corpora and keeps its caches.

- The user cache, :func:`cache_dir`: ``$QUASIRNN_CACHE``; else ``$XDG_CACHE_HOME/quasirnn``;
  else ``~/.cache/quasirnn``. Downloaded corpora go to ``cache_dir()/<name>`` (the PTB to
  ``ptb/``), the encoded-corpus caches to :func:`corpora_cache_dir`, ``cache_dir()/corpora``.
  Nothing is ever written into a user's data directory.
- Default data directories, :func:`default_data_dirs`: ``$QUASIRNN_DATA/<name>``, then
  ``cache_dir()/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "DATA_ENV", "cache_dir", "corpora_cache_dir", "default_data_dirs"]

#: Environment variable naming the user cache directory (see :func:`cache_dir`).
CACHE_ENV = "QUASIRNN_CACHE"
#: Environment variable naming a data root; corpus ``name`` is looked for in ``$QUASIRNN_DATA/name``.
DATA_ENV = "QUASIRNN_DATA"


def cache_dir() -> Path:
    """The user cache directory: ``$QUASIRNN_CACHE``, else ``$XDG_CACHE_HOME/quasirnn``, else ``~/.cache/quasirnn``.

    Example::

        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"QUASIRNN_CACHE": "/tmp/qc"}):
        ...     str(cache_dir()), str(corpora_cache_dir())
        ('/tmp/qc', '/tmp/qc/corpora')
    """
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quasirnn"


def corpora_cache_dir() -> Path:
    """Where encoded corpora are cached (:mod:`quasirnn.data.stream`): ``cache_dir()/corpora``.

    (Example: see :func:`cache_dir`.)
    """
    return cache_dir() / "corpora"


def default_data_dirs(name: str = "ptb") -> list[Path]:
    """Directories searched for corpus ``name``, in order: ``$QUASIRNN_DATA/name``, then ``cache_dir()/name``.

    Example::

        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"QUASIRNN_DATA": "/data", "QUASIRNN_CACHE": "/tmp/qc"}):
        ...     [str(d) for d in default_data_dirs("imdb")]
        ['/data/imdb', '/tmp/qc/imdb']
    """
    dirs = []
    root = os.environ.get(DATA_ENV)
    if root:
        dirs.append(Path(root) / name)
    dirs.append(cache_dir() / name)
    return dirs
