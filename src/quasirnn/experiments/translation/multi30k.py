"""Where the translation experiment finds Multi30k when ``--data`` is not given: the search order of ``lm`` and ``classify``.

Every command looks in ``$QUASIRNN_DATA/<corpus>`` first, then in the user cache
(``$XDG_CACHE_HOME/quasirnn/<corpus>``), the directories of
:func:`quasirnn.data.download.default_data_dirs`; ``--data`` overrides both. Only the Penn
Treebank is downloaded when it is nowhere; Multi30k has to be supplied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from quasirnn.data.download import DATA_ENV, default_data_dirs
from quasirnn.errors import DataError

__all__ = ["MULTI30K", "resolve_multi30k_dir"]

#: Folder name of the German–English Multi30k corpus under ``$QUASIRNN_DATA`` and the cache.
MULTI30K = "multi30k"


def _holds_training_pairs(directory: Path) -> bool:
    return all((directory / f"train.{lang}.gz").is_file() or (directory / f"train.{lang}").is_file()
               for lang in ("de", "en"))


def resolve_multi30k_dir(given: Optional[Union[str, Path]] = None) -> Path:
    """The Multi30k folder: ``given`` (``--data``) as is, else the first of ``$QUASIRNN_DATA/multi30k`` and
    the cache's ``multi30k`` that holds ``train.de[.gz]`` and ``train.en[.gz]``.

    Raises:
        DataError: no ``given`` and no default folder holds the training files (the message lists
            the folders searched and how to supply the data).

    Example::

        >>> import os, tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "multi30k").mkdir()
        >>> for lang in ("de", "en"):
        ...     _ = (root / "multi30k" / f"train.{lang}").write_text("x\\n")
        >>> os.environ["QUASIRNN_DATA"] = str(root)
        >>> resolve_multi30k_dir() == root / "multi30k"
        True
        >>> del os.environ["QUASIRNN_DATA"]
    """
    if given is not None:
        return Path(given).expanduser()
    candidates = default_data_dirs(MULTI30K)
    for candidate in candidates:
        if _holds_training_pairs(candidate):
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise DataError(f"no Multi30k found (searched {searched}): pass --data DIR with train.de[.gz], train.en[.gz], ..., "
                    f"or set {DATA_ENV} to a folder holding {MULTI30K}/")
