"""training/device.py: device names and the malloc tuning of training processes."""

from __future__ import annotations

import sys

import pytest
import torch

from quasirnn.errors import ConfigError
from quasirnn.training.device import keep_freed_memory, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")


def test_keep_freed_memory(monkeypatch):
    monkeypatch.setenv("QUASIRNN_MALLOC_TUNING", "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv("QUASIRNN_MALLOC_TUNING")
    applied = keep_freed_memory()
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert applied is True
