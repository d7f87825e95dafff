"""Atomic, safely loadable checkpoints.

A checkpoint is a dict saved with ``torch.save``::

    {"format": "quasirnn-checkpoint", "version": 1, "kind": "language_model",
     "config": {...}, ...payload (state dicts, vocabulary, counters, RNG state)}

holding only tensors and plain Python values, so that it loads with
``torch.load(weights_only=True)`` — no arbitrary code runs when a file is opened.

Writes are atomic: the bytes go to a temporary file in the target's directory, are flushed
and fsync'ed, then ``os.replace`` puts the file under its final name, so a crash leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import torch
from torch import nn

from quasirnn.errors import CheckpointError

__all__ = [
    "FORMAT",
    "VERSION",
    "atomic_write",
    "atomic_write_text",
    "save_checkpoint",
    "load_checkpoint",
    "load_module_state",
]

PathLike = Union[str, Path]

#: Value of the ``"format"`` key that marks a quasirnn checkpoint.
FORMAT = "quasirnn-checkpoint"
#: Current layout version; files of a later version are refused.
VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Writes a file atomically: ``write(f)`` fills a temp file next to ``path``, then rename.

    The temporary file lives in the same directory (so ``os.replace`` is atomic), is flushed
    and fsync'ed before the rename, and is removed if ``write`` raises. The directory is
    created if needed.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Writes UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def save_checkpoint(path: PathLike, kind: str, config: Mapping[str, Any], **payload: Any) -> Path:
    """Saves a checkpoint of model kind ``kind`` atomically.

    Args:
        path: target file.
        kind: the model kind (e.g. ``"language_model"``), checked by :func:`load_checkpoint`.
        config: the plain-value configuration needed to rebuild the model.
        payload: tensors, state dicts and plain values (no custom classes, so that the file
            loads with ``weights_only=True``).

    Returns:
        ``path`` as a Path.
    """
    for reserved in ("format", "version", "kind", "config"):
        if reserved in payload:
            raise ValueError(f"{reserved!r} is a reserved checkpoint key")
    checkpoint = {"format": FORMAT, "version": VERSION, "kind": kind, "config": dict(config), **payload}
    _check_plain(checkpoint, "checkpoint")
    return atomic_write(path, lambda f: torch.save(checkpoint, f))


_PLAIN_SCALARS = (str, int, float, bool, type(None), torch.dtype, torch.device)


def _check_plain(obj: Any, where: str) -> None:
    """Raises TypeError unless ``obj`` holds only what ``torch.load(weights_only=True)`` accepts."""
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN_SCALARS:
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            _check_plain(key, f"{where} key")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple, torch.Size):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which weights_only loading refuses")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The informative line of an exception message (torch.load's are long and multi-line, and
    ask to file an issue with PyTorch: that request is left out, the reason after it is kept)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    at = next((i for i, line in enumerate(lines) if "WeightsUnpickler error" in line), None)
    if at is not None:
        detail = lines[at][lines[at].index("WeightsUnpickler error"):]
        if detail.rstrip(":").strip() == "WeightsUnpickler error" and at + 1 < len(lines):
            detail = f"{detail.rstrip()} {lines[at + 1]}"
        line = detail.split(" Please ")[0]  # "Please use `torch.serialization.add_safe_globals`…": not for a user
    else:
        line = (lines or [type(exc).__name__])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _not_torch_file(path: Path) -> Optional[str]:
    """Why the file at ``path`` cannot be one ``torch.save`` wrote, or None when it may be one
    (a zip archive holding a ``data.pkl``, or a pickle: the legacy format)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "it is truncated or corrupted (the end of its zip archive is missing)"
        if not any(name.endswith("data.pkl") for name in names):
            return "it is a zip archive that torch.save did not write"
        return None
    if head.startswith(b"\x80"):  # a pickle of protocol 2 or later
        return None
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "it is a text file"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a character cut by the 4096 bytes read
                return "it is a text file"
    return "it is another kind of file (neither a zip archive nor a pickle)"


def load_checkpoint(
    path: PathLike,
    kind: Optional[str] = None,
    *,
    required: Iterable[str] = (),
    map_location: Union[str, torch.device, None] = "cpu",
) -> dict[str, Any]:
    """Loads a checkpoint with ``torch.load(weights_only=True)`` and checks what it holds.

    Args:
        path: the checkpoint file.
        kind: the expected model kind, or None to accept any.
        required: keys the payload must have (besides ``config``).
        map_location: where tensors are loaded (default CPU).

    Returns:
        The checkpoint dict (``format``, ``version``, ``kind``, ``config`` and the payload).

    Raises:
        CheckpointError: the file is missing, unreadable, corrupted or not a quasirnn
            checkpoint (one line naming what the file is instead: empty, text, another zip
            archive, truncated, another kind of file); it was written by a newer version; it holds
            another model kind; or a required key is missing.

    Example::

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "notes.txt"
        >>> _ = path.write_text("w1 w2 w3\\n")
        >>> load_checkpoint(path)
        Traceback (most recent call last):
        ...
        quasirnn.errors.CheckpointError: ...notes.txt is not a readable quasirnn checkpoint: it is a text file;
        expected the checkpoint.pt of a quasirnn training run (or its output directory)
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    unreadable = f"{path} is not a readable quasirnn checkpoint"
    expected = "expected the checkpoint.pt of a quasirnn training run (or its output directory)"
    try:
        reason = _not_torch_file(path)
    except OSError as exc:
        raise CheckpointError(f"{unreadable}: {exc.strerror or exc}") from None
    if reason is not None:
        raise CheckpointError(f"{unreadable}: {reason}; {expected}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file: RuntimeError, UnpicklingError, EOFError...
        raise CheckpointError(f"{unreadable}: it is corrupted, or holds objects that safe loading refuses "
                              f"({_first_line(exc)}); {expected}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a quasirnn checkpoint (no {FORMAT!r} marker)")
    version = checkpoint.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {version!r}; this quasirnn reads version {VERSION}")
    if kind is not None and checkpoint.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {checkpoint.get('kind')!r} checkpoint, not a {kind!r} one")
    missing = [key for key in ("config", *required) if key not in checkpoint]
    if missing or not isinstance(checkpoint["config"], dict):
        raise CheckpointError(f"{path} is incomplete: missing {', '.join(missing) or 'a config dict'}")
    return checkpoint


def load_module_state(module: nn.Module, state_dict: Mapping[str, Any], path: PathLike = "checkpoint") -> None:
    """``module.load_state_dict(state_dict)`` (strict), turning a mismatch into a CheckpointError.

    Raises:
        CheckpointError: missing/unexpected keys or tensor shapes that do not match ``module``
            (the checkpoint's config does not describe its weights).
    """
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights do not match the model its config describes: {_first_line(exc)}") from None
