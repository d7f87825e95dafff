"""Pieces shared by the ``quasirnn`` training commands (``lm``, ``classify``, ``translate``): their command line.

Argument types and the option groups every ``train`` command has, device and process set-up,
checkpoint paths, and how a run's configuration (a :class:`~quasirnn.training.config.TrainingConfig`
of the command's experiment) is built from the options or from the checkpoint it resumes. The
training loop itself is :class:`quasirnn.training.Trainer`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Optional, Union

import torch

from quasirnn.checkpoint_file import load_checkpoint
from quasirnn.errors import CheckpointError
from quasirnn.training import Task, Trainer
from quasirnn.training.config import TrainingConfig
from quasirnn.training.run_state import CHECKPOINT_NAME
from quasirnn.training.outdir import check_writable, refuse_earlier_run, removed_if_unused
from quasirnn.training.device import setup_device, use_device
from quasirnn.training.distributed import Distributed, setup_distributed
from quasirnn.training.optim import OPTIMIZERS

__all__ = [
    "add_device_options",
    "add_model_options",
    "add_optimisation_options",
    "add_output_options",
    "add_run_options",
    "add_size_options",
    "checkpoint_path",
    "given_options",
    "help_defaults",
    "nonnegative_float",
    "nonnegative_int",
    "positive_int",
    "probability",
    "run_training",
    "setup_device",
    "show_progress_bar",
    "train_command",
    "start_or_resume",
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


def add_size_options(g: argparse._ArgumentGroup, d: Any, cells: Iterable[str], *, cell: str, emb: str, hidden: str,
                     layers: str) -> None:
    """``--cell``, ``--emb-size``, ``--hidden-size`` and ``--num-layers``, described by the keyword
    arguments ("(default: …)" from ``d`` is appended)."""
    g.add_argument("--cell", choices=tuple(cells), default=None, help=f"{cell} (default: {d.cell})")
    g.add_argument("--emb-size", type=positive_int, default=None, help=f"{emb} (default: {d.emb_size})")
    g.add_argument("--hidden-size", type=positive_int, default=None, help=f"{hidden} (default: {d.hidden_size})")
    g.add_argument("--num-layers", type=positive_int, default=None, help=f"{layers} (default: {d.num_layers})")


def add_model_options(g: argparse._ArgumentGroup, d: Any, cells: Iterable[str], *, hidden: str, dropout: str,
                      dropouth: str, dropouti: str) -> None:
    """The recurrent-model options: cell, sizes, window, zoneout and the four dropouts.

    ``d`` holds the defaults (a config dataclass); the keyword arguments describe the options
    whose meaning differs between commands ("(default: …)" is appended).
    """
    add_size_options(g, d, cells, cell="recurrent layer", emb="embedding size E", hidden=hidden, layers="recurrent layers")
    g.add_argument("--window", type=window_list, default=None,
                   help=f"qrnn convolution width of every layer, or a comma list with one width per layer "
                        f"(default: {d.window})")
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


# ---------------------------------------------------------------------------- paths


def checkpoint_path(path: Union[str, Path]) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` when ``path`` is a run's output directory."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


#: What a command's ``make_task(config, checkpoint, dist)`` returns: the task (holding the run's
#: resolved configuration as ``task.config``), and how the run's first log line describes it
#: (e.g. "qrnn language model: 5,591,210 parameters, vocabulary 10,000").
TaskAndHeader = tuple[Task, str]
Start = tuple[TrainingConfig, Path, Optional[dict], Optional[Path]]


def run_training(args: argparse.Namespace, start: Callable[[argparse.Namespace], Start],
                 make_task: Callable[[Any, Optional[dict], Distributed], TaskAndHeader]) -> int:
    """The body of every ``quasirnn … train`` command, one process or one torchrun rank.

    ``start(args)`` gives the configuration, output directory and resumed checkpoint (see
    :func:`start_or_resume`); then the process joins the run (:func:`quasirnn.training.setup_distributed`,
    threads and memory by :func:`quasirnn.training.device.use_device`), rank 0 checks that the
    output directory is writable, ``make_task`` loads the data and builds the seeded model on
    ``dist.device``, and :class:`quasirnn.training.Trainer` trains it.

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
    dist = setup_distributed(config.run.device)
    use_device(dist.device, config.run.threads)
    try:
        with removed_if_unused(out):
            if dist.is_main:
                check_writable(out)
            task, header = make_task(config, checkpoint, dist)
            trainer = Trainer(task, task.config, out, dist, show_bar=show_progress_bar(args), quiet=args.quiet,
                              wall_start=wall_start)
            ranks = f", {dist.world_size} ranks" if dist.enabled else ""
            trainer.log(f"{'resuming' if checkpoint is not None else 'training'} {header}, device {dist.device}"
                        f"{ranks}, {torch.get_num_threads()} threads, output {out}")
            status = trainer.fit(checkpoint, checkpoint_file)
        return status
    finally:
        dist.close()


def train_command(name: str, start: Callable[[argparse.Namespace], Start],
                  make_task: Callable[[Any, Optional[dict], Distributed], TaskAndHeader]) -> Callable[[argparse.Namespace], int]:
    """``quasirnn NAME train``: :func:`run_training` with the command's ``start`` and ``make_task``."""

    def run_train(args: argparse.Namespace) -> int:
        return run_training(args, start, make_task)

    run_train.__doc__ = f"""``quasirnn {name} train``: trains, evaluates, writes metrics.json, checkpoint.pt and log.jsonl.

    Runs as one process, or as every rank of ``torchrun --nproc_per_node N`` (each rank trains on
    its share of every global batch; rank 0 writes the files).

    Returns:
        The exit status (0; 130 after Ctrl-C, once saved, evaluated and reported; 143 after SIGTERM, with a
        resumable checkpoint saved).

    Raises:
        DataError, CheckpointError, ConfigError, DivergedError: see the messages; printed by the CLI.
    """
    return run_train


def show_progress_bar(args: argparse.Namespace) -> bool:
    """``--quiet`` turns it off, ``--progress/--no-progress`` forces it, else on when stderr is a terminal."""
    if args.quiet:
        return False
    return args.progress if args.progress is not None else sys.stderr.isatty()


# ---------------------------------------------------------------------------- configuration


def given_options(args: argparse.Namespace, defaults: TrainingConfig) -> dict[str, Any]:
    """The configuration fields the command line gave (options default to None), by name."""
    return {key: getattr(args, key) for key in defaults.resume_kinds() if getattr(args, key, None) is not None}


def help_defaults(defaults: TrainingConfig) -> SimpleNamespace:
    """The defaults as flat attributes (``d.lr``), for the "(default: …)" of the help texts; an
    unset window reads as its preset (e.g. "2 in the first layer, 1 above")."""
    values = defaults.to_dict()
    for name, preset in getattr(defaults, "window_presets", {}).items():
        if values[name] is None:
            values[name] = f"{preset.first} in the first layer, {preset.above} above"
    return SimpleNamespace(**values)


def start_or_resume(args: argparse.Namespace, kind: str, required: Iterable[str], defaults: TrainingConfig,
                    out_prefix: str, prepare: Optional[Callable[[Any], Any]] = None) -> Start:
    """The configuration, output directory, and checkpoint (and its path) of a new or resumed run.

    With ``--resume`` the checkpoint (of model ``kind``, holding ``required``) gives the
    configuration (:meth:`TrainingConfig.resumed`) and the default output directory; otherwise
    the options over ``defaults`` do, and the output defaults to ``runs/{out_prefix}-CELL-TIMESTAMP``.
    ``prepare(config)``, when given, returns the configuration completed (e.g. a data location).

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
        config = defaults.resumed(checkpoint["config"], given_options(args, defaults), path)
        out = Path(args.out) if args.out is not None else path.parent
    else:
        config = defaults.replace(**given_options(args, defaults))
        if args.out is not None:
            out = Path(args.out)
        else:
            out = Path("runs") / f"{out_prefix}-{config.cell}-{time.strftime('%Y%m%d-%H%M%S')}"
        refuse_earlier_run(out, args.overwrite)
    if prepare is not None:
        config = prepare(config)
    return config, out, checkpoint, path
