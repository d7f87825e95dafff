"""Pieces shared by the ``quasirnn`` training commands (``lm``, ``classify``, ``translate``): their command line.

The options of a ``train`` command, built from the fields of its configuration
(:func:`add_config_options`), device and process set-up, checkpoint paths, and how a run's configuration (a :class:`~quasirnn.training.config.TrainingConfig`
of the command's experiment) is built from the options or from the checkpoint it resumes. The
training loop itself is :class:`quasirnn.training.Trainer`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch

from quasirnn.checkpoint_file import load_checkpoint
from quasirnn.errors import CheckpointError
from quasirnn.training import Task, Trainer
from quasirnn.training.config import RunOptions, TrainingConfig
from quasirnn.training.run_state import CHECKPOINT_NAME
from quasirnn.training.outdir import check_writable, refuse_earlier_run, removed_if_unused
from quasirnn.training.device import setup_device, use_device
from quasirnn.training.distributed import Distributed, setup_distributed
from quasirnn.training.options import DATA, EXECUTION, GROUPS, Option

__all__ = [
    "TrainCommand",
    "add_config_options",
    "add_device_options",
    "add_output_options",
    "checkpoint_path",
    "given_options",
    "print_result",
    "run_training",
    "setup_device",
    "show_progress_bar",
    "train_command",
    "start_or_resume",
]


# ---------------------------------------------------------------------------- options


def add_device_options(p: Union[argparse.ArgumentParser, argparse._ArgumentGroup]) -> None:
    """Adds ``--device`` and ``--threads`` (the options of the :class:`~quasirnn.training.config.RunOptions`
    fields) to a parser or argument group (``eval``, ``predict``)."""
    for f in dataclasses.fields(RunOptions):
        if f.name in ("device", "threads"):
            _add_option(p, f.name, f.metadata["option"], f.default, "")


def add_output_options(g: argparse._ArgumentGroup, default_out: str) -> None:
    """``--out``, ``--resume``, ``--overwrite``."""
    g.add_argument("--out", metavar="DIR", default=None, help=f"output directory (default: {default_out})")
    g.add_argument("--resume", metavar="OUT_DIR", default=None,
                   help="continue the run saved in OUT_DIR (or a checkpoint file) with its configuration")
    g.add_argument("--overwrite", action="store_true", help="allow --out to replace an earlier run's results (checkpoint.pt, metrics.json, log.jsonl); "
                        "without it such an --out is refused")


def add_config_options(t: argparse.ArgumentParser, command: "TrainCommand",
                       before: Optional[Mapping[str, Callable[[argparse._ArgumentGroup], None]]] = None) -> None:
    """The options of a ``train`` command: one per field of its configuration that has an
    :class:`~quasirnn.training.options.Option`, in its help group (:data:`~quasirnn.training.options.GROUPS`,
    in field order; no group: the command's top-level options), plus the output options and
    ``--quiet``/``--progress``. Every option defaults to None (not given, :func:`given_options`);
    its help reads the command's default (an unset window: its preset, e.g. "2 in the first
    layer, 1 above"). ``before`` maps a group to a function adding hand-written options at its top.
    """
    defaults = command.defaults
    values = defaults.to_dict()
    for name, preset in getattr(defaults, "window_presets", {}).items():
        if values[name] is None:
            values[name] = f"{preset.first} in the first layer, {preset.above} above"
    options = defaults.options()
    for title in GROUPS:
        fields = [(name, option) for name, option in options if option.group == title]
        if not fields and title not in (before or {}):
            continue
        g = t.add_argument_group(title)
        if title in (before or {}):
            before[title](g)
        for name, option in fields:
            _add_option(g, name, option, values[name], defaults.validation_metric)
        if title == DATA:
            add_output_options(g, command.default_out)
        if title == EXECUTION:
            g.add_argument("--quiet", action="store_true", help="no progress bar nor periodic log lines")
            g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                           help="force the progress bar on or off (default: on when stderr is a terminal)")
    for name, option in options:
        if option.group is None:
            _add_option(t, name, option, values[name], defaults.validation_metric)


def _add_option(g: Union[argparse.ArgumentParser, argparse._ArgumentGroup], name: str, option: Option,
                default: Any, metric: str) -> None:
    flag = "--" + name.replace("_", "-")
    text = option.help.replace("{default}", str(default)).replace("{metric}", metric)
    if isinstance(default, bool):
        g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
    else:
        g.add_argument(flag, type=option.type, choices=option.choices, metavar=option.metavar, default=None, help=text)


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


def run_training(args: argparse.Namespace, command: "TrainCommand") -> int:
    """The body of every ``quasirnn … train`` command, one process or one torchrun rank.

    :func:`start_or_resume` gives the configuration, output directory and resumed checkpoint;
    then the process joins the run (:func:`quasirnn.training.setup_distributed`,
    threads and memory by :func:`quasirnn.training.device.use_device`), rank 0 checks that the
    output directory is writable, ``command.make_task`` loads the data and builds the seeded model on
    ``dist.device``, and :class:`quasirnn.training.Trainer` trains it.

    A run that fails before it wrote anything removes the output directories it created
    (:func:`quasirnn.training.outdir.removed_if_unused`).

    Returns:
        The exit status: 0; 130 when Ctrl-C stopped the training (after saving, evaluating and
        reporting, so that ``train && deploy`` stops); 143 after SIGTERM (checkpoint saved).

    Raises:
        QuasirnnError: whatever the start, ``make_task`` or the trainer raise (one-line messages).
    """
    wall_start = time.perf_counter()
    config, out, checkpoint, checkpoint_file = start_or_resume(args, command)
    dist = setup_distributed(config.run.device)
    use_device(dist.device, config.run.threads)
    try:
        with removed_if_unused(out):
            if dist.is_main:
                check_writable(out)
            task, header = command.make_task(config, checkpoint, dist)
            trainer = Trainer(task, task.config, out, dist, show_bar=show_progress_bar(args), quiet=args.quiet,
                              wall_start=wall_start)
            ranks = f", {dist.world_size} ranks" if dist.enabled else ""
            trainer.log(f"{'resuming' if checkpoint is not None else 'training'} {header}, device {dist.device}"
                        f"{ranks}, {torch.get_num_threads()} threads, output {out}")
            status = trainer.fit(checkpoint, checkpoint_file)
        return status
    finally:
        dist.close()


@dataclass(frozen=True)
class TrainCommand:
    """What a ``quasirnn NAME train`` command runs: its experiment's configuration, checkpoint and task.

    Attributes:
        name: the command (``lm``); ``out_prefix``: a new run's default output ``runs/PREFIX-CELL-TIMESTAMP``.
        kind, checkpoint_keys: the model kind of its checkpoints and the entries a resumed one must hold.
        defaults: its configuration's defaults; ``new_run(given)``, when set, gives the defaults a new
            run's options replace instead (e.g. a ``--preset``'s recipe).
        make_task: ``make_task(config, checkpoint, dist)`` → (task, header line), see :data:`TaskAndHeader`.
        prepare: completes a started or resumed configuration (e.g. its data location), when set.
        upgrade: ``upgrade(checkpoint, path)`` brings an older resumed checkpoint to today's layout, when set.
    """

    name: str
    out_prefix: str
    kind: str
    checkpoint_keys: tuple[str, ...]
    defaults: TrainingConfig
    make_task: Callable[[Any, Optional[dict], Distributed], TaskAndHeader]
    new_run: Optional[Callable[[Mapping[str, Any]], TrainingConfig]] = None
    prepare: Optional[Callable[[Any], Any]] = None
    upgrade: Optional[Callable[[dict, Path], None]] = None

    @property
    def default_out(self) -> str:
        """The help text of ``--out``'s default."""
        return f"runs/{self.out_prefix}-CELL-TIMESTAMP"


def train_command(command: TrainCommand) -> Callable[[argparse.Namespace], int]:
    """``quasirnn NAME train``: :func:`run_training` of ``command``."""

    def run_train(args: argparse.Namespace) -> int:
        return run_training(args, command)

    run_train.__doc__ = f"""``quasirnn {command.name} train``: trains, evaluates, writes metrics.json, checkpoint.pt and log.jsonl.

    Runs as one process, or as every rank of ``torchrun --nproc_per_node N`` (each rank trains on
    its share of every global batch; rank 0 writes the files).

    Returns:
        The exit status (0; 130 after Ctrl-C, once saved, evaluated and reported; 143 after SIGTERM, with a
        resumable checkpoint saved).

    Raises:
        DataError, CheckpointError, ConfigError, DivergedError: see the messages; printed by the CLI.
    """
    return run_train


def print_result(args: argparse.Namespace, result: dict[str, Any], text: str) -> int:
    """Prints an ``eval`` result: one JSON object with ``--json``, else ``text``; returns the exit status 0."""
    print(json.dumps(result) if args.json else text)
    return 0


def show_progress_bar(args: argparse.Namespace) -> bool:
    """``--quiet`` turns it off, ``--progress/--no-progress`` forces it, else on when stderr is a terminal."""
    if args.quiet:
        return False
    return args.progress if args.progress is not None else sys.stderr.isatty()


# ---------------------------------------------------------------------------- configuration


def given_options(args: argparse.Namespace, defaults: TrainingConfig) -> dict[str, Any]:
    """The configuration fields the command line gave (options default to None), by name."""
    return {key: getattr(args, key) for key in defaults.resume_kinds() if getattr(args, key, None) is not None}


def start_or_resume(args: argparse.Namespace, command: TrainCommand) -> Start:
    """The configuration, output directory, and checkpoint (and its path) of a new or resumed run.

    With ``--resume`` the checkpoint (of ``command.kind``, holding its ``checkpoint_keys``) gives
    the configuration (:meth:`TrainingConfig.resumed`) and the default output directory; otherwise
    the options over ``command``'s defaults do, and the output defaults to ``runs/PREFIX-CELL-TIMESTAMP``.

    Raises:
        CheckpointError: ``--resume`` names no checkpoint; an unreadable checkpoint or one of another kind.
        ConfigError: a new run's ``--out`` holds an earlier run's results (without ``--overwrite``;
            :func:`quasirnn.training.outdir.refuse_earlier_run`); invalid options.
    """
    checkpoint = path = None
    given = given_options(args, command.defaults)
    if args.resume is not None:
        path = checkpoint_path(args.resume)
        if not path.is_file():
            where = Path(args.resume)
            where = f"{where} holds no {CHECKPOINT_NAME}" if where.is_dir() else f"{where} does not exist"
            raise CheckpointError(f"--resume {args.resume}: nothing to resume, {where}; start a new run with --out instead")
        checkpoint = load_checkpoint(path, command.kind, required=command.checkpoint_keys)
        if command.upgrade is not None:
            command.upgrade(checkpoint, path)
        config = command.defaults.resumed(checkpoint["config"], given, path)
        out = Path(args.out) if args.out is not None else path.parent
    else:
        defaults = command.new_run(given) if command.new_run is not None else command.defaults
        config = defaults.replace(**given)
        if args.out is not None:
            out = Path(args.out)
        else:
            out = Path("runs") / f"{command.out_prefix}-{config.cell}-{time.strftime('%Y%m%d-%H%M%S')}"
        refuse_earlier_run(out, args.overwrite)
    if command.prepare is not None:
        config = command.prepare(config)
    return config, out, checkpoint, path
