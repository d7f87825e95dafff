"""Pieces shared by the ``quasirnn`` training commands (``lm``, ``classify``).

Argument types, device selection, the CPU allocator setting, the optimizer, checkpoint paths,
RNG state, progress logging, and how a run's configuration is built from the options or from
the checkpoint it resumes. Each command keeps its own configuration dataclass and loop.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn
from tqdm import tqdm

from quasirnn.errors import ConfigError

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "OPTIMIZERS",
    "Log",
    "add_device_options",
    "checkpoint_path",
    "config_from_args",
    "finite",
    "keep_freed_memory",
    "make_optimizer",
    "nonnegative_float",
    "positive_int",
    "probability",
    "resolve_device",
    "resume_config",
    "rng_state",
    "set_rng_state",
    "setup_device",
    "show_progress_bar",
    "window_list",
]

#: File names inside a run's output directory.
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
#: Optimizers a training command accepts (``--optimizer``).
OPTIMIZERS = ("adam", "adamw", "sgd")


# ---------------------------------------------------------------------------- argument types


def window_list(text: str) -> Union[int, list[int]]:
    """``--window``: an integer, or a comma-separated list of integers ≥ 1 (one per layer)."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma-separated list, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"windows must be >= 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def probability(text: str) -> float:
    """A float in [0, 1) (dropout-like probabilities)."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A float ≥ 0."""
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_device_options(p: Union[argparse.ArgumentParser, argparse._ArgumentGroup]) -> None:
    """Adds ``--device`` and ``--threads`` to a parser or argument group."""
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's choice)")


# ---------------------------------------------------------------------------- device


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


def setup_device(device_name: Optional[str], threads: Optional[int]) -> torch.device:
    """Resolves the device, sets torch's CPU threads when given, and on CPU keeps freed memory.

    Raises:
        ConfigError: see :func:`resolve_device`.
    """
    device = resolve_device(device_name)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        keep_freed_memory()
    return device


# ---------------------------------------------------------------------------- training pieces


def make_optimizer(config: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``config["optimizer"]`` (adam, adamw, sgd) with ``lr`` and weight decay ``wdecay``."""
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, wd = config["optimizer"], config["lr"], config["wdecay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


def checkpoint_path(path: Union[str, Path]) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` when ``path`` is a run's output directory."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def finite(x: Optional[float]) -> Optional[float]:
    """``x``, or None when it is None, NaN or infinite (JSON has no NaN)."""
    return x if x is not None and math.isfinite(x) else None


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's CPU RNG state (and the device's, on CUDA), for a checkpoint."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restores what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class Log:
    """Prints progress lines on stdout (flushed, so logs interleave correctly in CI)."""

    def __init__(self, bar_active: bool) -> None:
        self.bar_active = bar_active

    def __call__(self, line: str) -> None:
        if self.bar_active:
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)


def show_progress_bar(args: argparse.Namespace) -> bool:
    """``--quiet`` turns it off, ``--progress/--no-progress`` forces it, else on when stderr is a terminal."""
    if args.quiet:
        return False
    return args.progress if args.progress is not None else sys.stderr.isatty()


# ---------------------------------------------------------------------------- configuration


def config_from_args(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` with every key that the command line gave (options default to None) replaced."""
    config = dict(defaults)
    for key in config:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    return config


def resume_config(args: argparse.Namespace, saved: dict[str, Any], path: Path, defaults: dict[str, Any],
                  fixed_keys: Iterable[str], session_keys: Iterable[str], inherited_keys: Iterable[str]) -> dict[str, Any]:
    """The configuration of a resumed run.

    ``fixed_keys`` (model and optimisation) and ``inherited_keys`` come from the checkpoint's
    ``saved`` configuration; ``session_keys`` given on the command line override it.

    Raises:
        ConfigError: an option of ``fixed_keys`` given with a value other than the checkpoint's.
    """
    fixed_keys, inherited_keys = tuple(fixed_keys), tuple(inherited_keys)
    config = dict(defaults)
    config.update({k: v for k, v in saved.items() if k in fixed_keys or k in inherited_keys})
    conflicts = []
    for key in fixed_keys:
        value = getattr(args, key, None)
        if value is not None and value != config.get(key):
            conflicts.append(f"--{key.replace('_', '-')} {value} (checkpoint: {config.get(key)})")
    if conflicts:
        raise ConfigError(
            f"a resumed run keeps the configuration of {path}; these options differ: {'; '.join(conflicts)}"
        )
    for key in session_keys:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    return config
