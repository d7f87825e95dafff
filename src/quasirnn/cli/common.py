"""Pieces shared by the ``quasirnn`` training commands (``lm``, ``classify``).

Argument types and the option groups both ``train`` commands have, device selection, the CPU
allocator setting, the optimizer, checkpoint paths, RNG state, progress logging, and how a
run's configuration is built from the options or from the checkpoint it resumes. Each command
keeps its own configuration dataclass and training loop.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn
from tqdm import tqdm

from quasirnn.checkpoint import load_checkpoint
from quasirnn.errors import ConfigError

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "OPTIMIZERS",
    "Limits",
    "Log",
    "add_device_options",
    "add_model_options",
    "add_optimisation_options",
    "add_output_options",
    "add_run_options",
    "checkpoint_path",
    "config_from_args",
    "epoch_bar",
    "finite",
    "keep_freed_memory",
    "make_optimizer",
    "nonnegative_float",
    "positive_int",
    "probability",
    "resolve_device",
    "resume_config",
    "rng_state",
    "run_record",
    "set_rng_state",
    "setup_device",
    "show_progress_bar",
    "start_or_resume",
    "validate_run_config",
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


def add_output_options(g: argparse._ArgumentGroup, default_out: str) -> None:
    """``--out``, ``--resume``, ``--overwrite``."""
    g.add_argument("--out", metavar="DIR", default=None, help=f"output directory (default: {default_out})")
    g.add_argument("--resume", metavar="OUT_DIR", default=None,
                   help="continue the run saved in OUT_DIR (or a checkpoint file) with its configuration")
    g.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing checkpoint")


def add_model_options(g: argparse._ArgumentGroup, d: Any, cells: Iterable[str], *, hidden: str, dropout: str,
                      dropouth: str, dropouti: str) -> None:
    """The recurrent-model options: cell, sizes, window, zoneout and the four dropouts.

    ``d`` holds the defaults (a config dataclass); the keyword arguments describe the options
    whose meaning differs between commands ("(default: …)" is appended).
    """
    g.add_argument("--cell", choices=tuple(cells), default=None, help=f"recurrent layer (default: {d.cell})")
    g.add_argument("--emb-size", type=positive_int, default=None, help=f"embedding size E (default: {d.emb_size})")
    g.add_argument("--hidden-size", type=positive_int, default=None, help=f"{hidden} (default: {d.hidden_size})")
    g.add_argument("--num-layers", type=positive_int, default=None, help=f"recurrent layers (default: {d.num_layers})")
    g.add_argument("--window", type=window_list, default=None,
                   help=f"qrnn convolution width of the FIRST layer (others 1), or a comma list with one width per "
                        f"layer (default: {d.window})")
    g.add_argument("--zoneout", type=probability, default=None, help=f"qrnn zoneout probability (default: {d.zoneout})")
    g.add_argument("--dropout", type=probability, default=None, help=f"{dropout} (default: {d.dropout})")
    g.add_argument("--dropouth", type=probability, default=None, help=f"{dropouth} (default: {d.dropouth})")
    g.add_argument("--dropouti", type=probability, default=None, help=f"{dropouti} (default: {d.dropouti})")
    g.add_argument("--dropoute", type=probability, default=None,
                   help=f"embedding (word-type) dropout (default: {d.dropoute})")


def add_optimisation_options(g: argparse._ArgumentGroup, d: Any, metric: str) -> None:
    """Batch sizes, optimizer, learning rate, weight decay, clipping, plateau decay on ``metric``, seed."""
    g.add_argument("--batch-size", type=positive_int, default=None, help=f"training batch size (default: {d.batch_size})")
    g.add_argument("--eval-batch-size", type=positive_int, default=None,
                   help=f"validation/test batch size (default: {d.eval_batch_size})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=f"(default: {d.optimizer})")
    g.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {d.lr})")
    g.add_argument("--wdecay", type=nonnegative_float, default=None, help=f"weight decay (default: {d.wdecay})")
    g.add_argument("--clip", type=nonnegative_float, default=None,
                   help=f"gradient norm clipping, 0 = off (default: {d.clip})")
    g.add_argument("--lr-decay", type=float, default=None,
                   help=f"multiply the learning rate by this when {metric} does not improve after an "
                        f"epoch, 1 = off (default: {d.lr_decay})")
    g.add_argument("--seed", type=int, default=None, help=f"random seed (default: {d.seed})")


def add_run_options(t: argparse.ArgumentParser, d: Any) -> None:
    """The groups "run length" (epochs, steps, time budget) and "execution and logging"."""
    g = t.add_argument_group("run length (can change on --resume)")
    g.add_argument("--epochs", type=int, default=None, help=f"total epochs (default: {d.epochs})")
    g.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimizer steps in total, 0 = no limit (default: no limit)")
    g.add_argument("--time-budget", type=nonnegative_float, default=None, metavar="MINUTES",
                   help=f"stop after this much training time in this invocation (evaluation excluded), 0 = no "
                        f"limit (default: {d.time_budget})")
    g = t.add_argument_group("execution and logging")
    add_device_options(g)
    g.add_argument("--log-interval", type=positive_int, default=None,
                   help=f"steps between log lines when the progress bar is off (default: {d.log_interval})")
    g.add_argument("--quiet", action="store_true", help="no progress bar nor periodic log lines")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")


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


def epoch_bar(total: int, initial: int, epoch: int, epochs: int, show: bool) -> tqdm:
    """The progress bar of one epoch (on stderr, removed when the epoch ends): ``epoch N/EPOCHS``."""
    return tqdm(total=total, initial=initial, disable=not show, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                file=sys.stderr, dynamic_ncols=True, leave=False)


class Limits:
    """When a training run stops early: ``max_steps`` optimizer steps in total (0 = none), or
    ``minutes`` of training time spent in this invocation (0 or None = none; evaluation excluded).

    Attributes:
        session_s: training seconds spent in this invocation (add them with :meth:`spend`).
    """

    def __init__(self, max_steps: Optional[int], minutes: Optional[float]) -> None:
        self.max_steps = max_steps or 0
        self.budget_s = (minutes or 0) * 60.0
        self.session_s = 0.0

    def spend(self, seconds: float) -> None:
        """Counts ``seconds`` of training time."""
        self.session_s += seconds

    def reached(self, step: int) -> Optional[str]:
        """``"max_steps"``, ``"time_budget"``, or None to go on, after ``step`` steps in total."""
        if self.max_steps and step >= self.max_steps:
            return "max_steps"
        if self.budget_s and self.session_s >= self.budget_s:
            return "time_budget"
        return None


def run_record(config: dict[str, Any], device: torch.device, wall_start: float, stop_reason: Optional[str],
               finished: bool, history: list) -> dict[str, Any]:
    """The metrics.json entries every command writes after its own: how the run went and where it ran."""
    return {
        "wall_time_s": time.perf_counter() - wall_start,
        "stop_reason": stop_reason,
        "finished": finished,
        "history": history,
        "config": config,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }


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


def validate_run_config(config: dict[str, Any]) -> None:
    """Checks the options every training command shares.

    Raises:
        ConfigError: zoneout with a cell other than qrnn, a window list of the wrong length, a learning
            rate ≤ 0, a decay outside (0, 1], negative epochs or steps.
    """
    if config["cell"] != "qrnn" and config["zoneout"]:
        raise ConfigError(f"--zoneout applies to the qrnn cell only; use 0 with --cell {config['cell']}")
    window = config["window"]
    if isinstance(window, list) and len(window) != config["num_layers"]:
        raise ConfigError(f"--window lists {len(window)} widths for {config['num_layers']} layers")
    if config["lr"] <= 0:
        raise ConfigError(f"--lr must be > 0, got {config['lr']}")
    if not 0 < config["lr_decay"] <= 1:
        raise ConfigError(f"--lr-decay must be in (0, 1], got {config['lr_decay']}")
    if config["epochs"] < 0:
        raise ConfigError(f"--epochs must be >= 0, got {config['epochs']}")
    if config["max_steps"] is not None and config["max_steps"] < 0:
        raise ConfigError(f"--max-steps must be >= 0, got {config['max_steps']}")


def start_or_resume(args: argparse.Namespace, kind: str, required: Iterable[str], defaults: dict[str, Any],
                    keys: tuple[Iterable[str], Iterable[str], Iterable[str]], out_prefix: str,
                    prepare: Any = None) -> tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]:
    """The configuration, output directory, and checkpoint (and its path) of a new or resumed run.

    With ``--resume`` the checkpoint (of model ``kind``, holding ``required``) gives the
    configuration (:func:`resume_config` with ``keys`` = (fixed, session, inherited)) and the
    default output directory; otherwise the options over ``defaults`` do, and the output
    defaults to ``runs/{out_prefix}-CELL-TIMESTAMP``. ``prepare(config)``, when given, may
    complete the configuration; then :func:`validate_run_config` checks it.

    Raises:
        CheckpointError: an unreadable checkpoint or one of another kind.
        ConfigError: ``--out`` already holds a checkpoint (without ``--overwrite``); invalid options.
    """
    checkpoint = path = None
    if args.resume is not None:
        path = checkpoint_path(args.resume)
        checkpoint = load_checkpoint(path, kind, required=tuple(required))
        config = resume_config(args, checkpoint["config"], path, defaults, *keys)
        out = Path(args.out) if args.out is not None else path.parent
    else:
        config = config_from_args(args, defaults)
        if args.out is not None:
            out = Path(args.out)
        else:
            out = Path("runs") / f"{out_prefix}-{config['cell']}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (out / CHECKPOINT_NAME).exists() and not args.overwrite:
            raise ConfigError(f"{out} already holds a checkpoint; continue it with --resume {out}, or pass --overwrite")
    if prepare is not None:
        prepare(config)
    validate_run_config(config)
    return config, out, checkpoint, path


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
