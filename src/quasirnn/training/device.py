"""Devices for training and evaluation: ``--device`` resolution and the CPU allocator setting."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

import torch

from quasirnn.errors import ConfigError

__all__ = ["keep_freed_memory", "resolve_device", "setup_device", "use_device"]


def resolve_device(name: Optional[str]) -> torch.device:
    """Turns ``--device`` into a torch.device; ``auto`` (or None) picks CUDA when available.

    Raises:
        ConfigError: an unknown device string, or CUDA/MPS requested where it is unavailable.
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name}: not a device (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available (no GPU, or torch built without CUDA); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise ConfigError(f"--device {name}: unsupported device type {device.type!r} (use cpu, cuda or auto)")
    return device


def keep_freed_memory() -> bool:
    """Tells glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same large buffers (the (T, B, V) logits and their
    gradients, tens of MB) every step; by default glibc serves each from a fresh ``mmap`` and
    the kernel zero-fills its pages again, which costs 15–30% of a CPU step for the default
    models. Disabling mmap for allocations (``M_MMAP_MAX = 0``) and raising the trim threshold
    keeps those pages. Process-wide; only on Linux with glibc; set ``QUASIRNN_MALLOC_TUNING=0``
    to skip.

    Returns:
        True when the settings were applied.
    """
    if os.environ.get("QUASIRNN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc
        return False


def use_device(device: torch.device, threads: Optional[int] = None) -> torch.device:
    """Sets torch's CPU threads when ``threads`` is given and, on CPU, keeps freed memory; returns ``device``.

    Example::

        >>> use_device(torch.device("cpu")).type
        'cpu'
    """
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        keep_freed_memory()
    return device


def setup_device(name: Optional[str], threads: Optional[int] = None) -> torch.device:
    """The device ``name`` (:func:`resolve_device`), made ready by :func:`use_device`.

    Raises:
        ConfigError: see :func:`resolve_device`.

    Example::

        >>> setup_device("cpu").type
        'cpu'
    """
    return use_device(resolve_device(name), threads)
