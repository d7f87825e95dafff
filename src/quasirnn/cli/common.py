"""Pieces shared by the ``quasirnn`` training commands (``lm``, ``classify``, ``translate``): their command line.

Argument types and the option groups every ``train`` command has, device and process set-up,
checkpoint paths, and how a run's configuration is built from the options or from the checkpoint
it resumes. Each command keeps its own configuration dataclass; the training loop itself is
:class:`quasirnn.training.Trainer`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import torch

from quasirnn.checkpoint_file import load_checkpoint
from quasirnn.errors import CheckpointError, ConfigError
from quasirnn.training import Task, Trainer
from quasirnn.training.run_state import CHECKPOINT_NAME
from quasirnn.training.interrupts import INTERRUPTED_STATUS
from quasirnn.training.outdir import check_writable, refuse_earlier_run, removed_if_unused
from quasirnn.training.device import keep_freed_memory, resolve_device
from quasirnn.training.distributed import Distributed, setup_distributed
from quasirnn.training.optim import OPTIMIZERS

__all__ = [
    "add_device_options",
    "add_model_options",
    "add_optimisation_options",
    "add_output_options",
    "add_run_options",
    "checkpoint_path",
    "config_from_args",
    "nonnegative_float",
    "nonnegative_int",
    "positive_int",
    "probability",
    "resume_config",
    "run_training",
    "setup_device",
    "setup_training",
    "show_progress_bar",
    "start_or_resume",
    "validate_run_config",
    "window_list",
]



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


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts: epochs, sizes, batch sizes, threads, ...)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0 (limits where 0 means "none", patience)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
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
    g.add_argument("--overwrite", action="store_true", help="allow --out to replace an earlier run's results (checkpoint.pt, metrics.json, log.jsonl); "
                        "without it such an --out is refused")


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


def add_optimisation_options(g: argparse._ArgumentGroup, d: Any, metric: str, *,
                             batch: str = "training batch size") -> None:
    """Batch sizes, optimizer, learning rate, weight decay, clipping, plateau decay on ``metric``, seed.

    ``batch`` describes ``--batch-size`` ("(default: …)" is appended).
    """
    g.add_argument("--batch-size", type=positive_int, default=None, help=f"{batch} (default: {d.batch_size})")
    g.add_argument("--eval-batch-size", type=positive_int, default=None,
                   help=f"validation/test batch size (default: {d.eval_batch_size})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=f"optimizer (default: {d.optimizer})")
    g.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {d.lr})")
    g.add_argument("--wdecay", type=nonnegative_float, default=None, help=f"weight decay (default: {d.wdecay})")
    g.add_argument("--clip", type=nonnegative_float, default=None,
                   help=f"gradient norm clipping, 0 = off (default: {d.clip})")
    g.add_argument("--lr-decay", type=float, default=None,
                   help=f"multiply the learning rate by this when {metric} does not improve after an "
                        f"epoch, 1 = off (default: {d.lr_decay})")
    g.add_argument("--lr-patience", type=nonnegative_int, default=None,
                   help=f"epochs without improvement of {metric} tolerated before each decay "
                        f"(default: {d.lr_patience})")
    g.add_argument("--seed", type=int, default=None, help=f"random seed (default: {d.seed})")


def add_run_options(t: argparse.ArgumentParser, d: Any) -> None:
    """The groups "run length" (epochs, steps, time budget) and "execution and logging"."""
    g = t.add_argument_group("run length (can change on --resume)")
    g.add_argument("--epochs", type=positive_int, default=None, help=f"total epochs, >= 1 (default: {d.epochs})")
    g.add_argument("--max-steps", type=nonnegative_int, default=None,
                   help="stop after this many optimizer steps in total, 0 = no limit (default: no limit)")
    g.add_argument("--time-budget", type=nonnegative_float, default=None, metavar="MINUTES",
                   help=f"stop after this much training time in this invocation (evaluation excluded), 0 = no "
                        f"limit (default: {d.time_budget})")
    g.add_argument("--checkpoint-every", type=nonnegative_int, default=None, metavar="STEPS",
                   help="also save a resumable checkpoint every STEPS optimizer steps, 0 = only at the end of "
                        f"each epoch (default: {d.checkpoint_every})")
    g = t.add_argument_group("execution and logging")
    add_device_options(g)
    g.add_argument("--log-interval", type=positive_int, default=None,
                   help=f"steps between log lines when the progress bar is off (default: {d.log_interval})")
    g.add_argument("--quiet", action="store_true", help="no progress bar nor periodic log lines")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")


# ---------------------------------------------------------------------------- device


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


def checkpoint_path(path: Union[str, Path]) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` when ``path`` is a run's output directory."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def setup_training(config: dict[str, Any]) -> Distributed:
    """The process set-up of a training run: joins torchrun's process group when there is one
    (:func:`quasirnn.training.setup_distributed`), sets torch's CPU threads (``config["threads"]``)
    and, on CPU, keeps freed memory.

    Raises:
        ConfigError: an unavailable device (e.g. ``--device cuda`` without a GPU); see setup_distributed.
    """
    dist = setup_distributed(config["device"])
    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    if dist.device.type == "cpu":
        keep_freed_memory()
    return dist


#: What a command's ``make_task(config, checkpoint, dist)`` returns: the task, and how the run's first
#: log line describes it (e.g. "qrnn language model: 5,591,210 parameters, vocabulary 10,000").
TaskAndHeader = tuple[Task, str]


def run_training(args: argparse.Namespace,
                 start: Callable[[argparse.Namespace], tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]],
                 make_task: Callable[[dict[str, Any], Optional[dict], Distributed], TaskAndHeader]) -> int:
    """The body of every ``quasirnn … train`` command, one process or one torchrun rank.

    ``start(args)`` gives the configuration, output directory and resumed checkpoint (see
    :func:`start_or_resume`); then the process joins the run (:func:`setup_training`), rank 0
    checks that the output directory is writable, ``make_task`` loads the data and builds the
    seeded model on ``dist.device``, and :class:`quasirnn.training.Trainer` trains it.

    A run that fails before it wrote anything removes the output directories it created
    (:func:`quasirnn.training.outdir.removed_if_unused`).

    Returns:
        The exit status: 0; 130 when Ctrl-C stopped the training (after saving, evaluating and
        reporting, so that ``train && deploy`` stops); 143 after SIGTERM (checkpoint saved).

    Raises:
        QuasirnnError: whatever ``start``, ``make_task`` or the trainer raise (one-line messages).
    """
    wall_start = time.perf_counter()
    config, out, checkpoint, checkpoint_file = start(args)
    dist = setup_training(config)
    try:
        with removed_if_unused(out):
            if dist.is_main:
                check_writable(out)
            task, header = make_task(config, checkpoint, dist)
            trainer = Trainer(task, config, out, dist, show_bar=show_progress_bar(args), quiet=args.quiet,
                              wall_start=wall_start)
            ranks = f", {dist.world_size} ranks" if dist.enabled else ""
            trainer.log(f"{'resuming' if checkpoint is not None else 'training'} {header}, device {dist.device}"
                        f"{ranks}, {torch.get_num_threads()} threads, output {out}")
            status = trainer.fit(checkpoint, checkpoint_file)
        return INTERRUPTED_STATUS if trainer.stop_reason == "interrupted" else status
    finally:
        dist.close()


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
        ConfigError: zoneout with a cell other than qrnn, a window list (``window``,
            ``encoder_window`` or ``decoder_window``) of the wrong length, a learning rate ≤ 0, a
            decay outside (0, 1], epochs < 1, negative steps or checkpoint interval.
    """
    if config["cell"] != "qrnn" and config["zoneout"]:
        raise ConfigError(f"--zoneout applies to the qrnn cell only; use 0 with --cell {config['cell']}")
    for key in ("window", "encoder_window", "decoder_window"):
        window = config.get(key)
        if isinstance(window, list) and len(window) != config["num_layers"]:
            n, layers = len(window), config["num_layers"]
            raise ConfigError(f"--{key.replace('_', '-')} lists {n} width{'s' if n != 1 else ''} for {layers} "
                              f"layer{'s' if layers != 1 else ''}; give one width per layer, or one number for all")
    if config["lr"] <= 0:
        raise ConfigError(f"--lr must be > 0, got {config['lr']}")
    if not 0 < config["lr_decay"] <= 1:
        raise ConfigError(f"--lr-decay must be in (0, 1], got {config['lr_decay']}")
    if config["epochs"] < 1:
        raise ConfigError(f"--epochs must be >= 1, got {config['epochs']}")
    if config["max_steps"] is not None and config["max_steps"] < 0:
        raise ConfigError(f"--max-steps must be >= 0, got {config['max_steps']}")
    if config.get("checkpoint_every") is not None and config["checkpoint_every"] < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0, got {config['checkpoint_every']}")


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
        CheckpointError: ``--resume`` names no checkpoint; an unreadable checkpoint or one of another kind.
        ConfigError: a new run's ``--out`` holds an earlier run's results (without ``--overwrite``;
            :func:`quasirnn.training.outdir.refuse_earlier_run`); invalid options.
    """
    checkpoint = path = None
    if args.resume is not None:
        path = checkpoint_path(args.resume)
        if not path.is_file():
            given = Path(args.resume)
            where = f"{given} holds no {CHECKPOINT_NAME}" if given.is_dir() else f"{given} does not exist"
            raise CheckpointError(f"--resume {args.resume}: nothing to resume, {where}; start a new run with --out instead")
        checkpoint = load_checkpoint(path, kind, required=tuple(required))
        config = resume_config(args, checkpoint["config"], path, defaults, *keys)
        out = Path(args.out) if args.out is not None else path.parent
    else:
        config = config_from_args(args, defaults)
        if args.out is not None:
            out = Path(args.out)
        else:
            out = Path("runs") / f"{out_prefix}-{config['cell']}-{time.strftime('%Y%m%d-%H%M%S')}"
        refuse_earlier_run(out, args.overwrite)
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
