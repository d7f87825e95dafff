"""Pieces shared by the ``quasirnn`` training commands (``lm``, ``classify``, ``translate``): their command line.

The options of a ``train`` command, built from the fields of its configuration
(:func:`add_config_options`) and read back (:func:`given_options`); the ``train`` body over
:mod:`quasirnn.training.launch` (:func:`train_command`); the printing of ``eval`` results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any, Callable, Collection, Mapping, Optional, Union

from quasirnn.quantization import SCHEMES
from quasirnn.training.config import RunOptions, TrainingConfig
from quasirnn.training.launch import Experiment, run_training, start_or_resume
from quasirnn.training.options import DATA, EXECUTION, GROUPS, Option

__all__ = ["add_command_group", "add_config_options", "add_device_options", "add_output_options", "add_quantize_option",
           "add_train_parser", "given_options", "print_result", "show_progress_bar", "train_command"]


def add_command_group(commands: argparse._SubParsersAction, name: str, help: str,
                      description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """Registers the command group ``name`` (``lm``, ``classify``, ``translate``): its parser and its sub-commands."""
    group = commands.add_parser(name, help=help, description=description)
    return group, group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def add_train_parser(sub: argparse._SubParsersAction, experiment: Experiment, help: str, description: str,
                     before: Optional[Mapping[str, Callable[[argparse._ArgumentGroup], None]]] = None) -> None:
    """Registers ``train`` in a group: the options of ``experiment``'s configuration, run by :func:`train_command`."""
    t = sub.add_parser("train", help=help, description=description)
    t.set_defaults(func=train_command(experiment))
    add_config_options(t, experiment, before)


def add_device_options(p: Union[argparse.ArgumentParser, argparse._ArgumentGroup]) -> None:
    """Adds ``--device`` and ``--threads`` (the options of the :class:`~quasirnn.training.config.RunOptions`
    fields) to a parser or argument group (``eval``, ``predict``)."""
    for f in dataclasses.fields(RunOptions):
        if f.name in ("device", "threads"):
            _add_option(p, f.name, f.metadata["option"], f.default, "")


def add_quantize_option(p: Union[argparse.ArgumentParser, argparse._ArgumentGroup]) -> None:
    """Adds ``--quantize SCHEME`` (:data:`quasirnn.quantization.SCHEMES`; default None: float weights) to an
    inference command (``eval``, ``generate``, ``predict``, ``translate``), which passes it to the loading of its
    checkpoint (:func:`quasirnn.training.launch.trained_model`)."""
    p.add_argument("--quantize", choices=SCHEMES, default=None,
                   help="int8: the linear layers (gate projections, output layer) with int8 weights and "
                        "dynamically quantised inputs (quasirnn.quantize), 1.4-3x faster on a CPU; CPU and "
                        "float32 only (default: the saved float weights)")


def add_output_options(g: argparse._ArgumentGroup, default_out: str) -> None:
    """``--out``, ``--resume``, ``--overwrite``."""
    g.add_argument("--out", metavar="DIR", default=None, help=f"output directory (default: {default_out})")
    g.add_argument("--resume", metavar="OUT_DIR", default=None,
                   help="continue the run saved in OUT_DIR (or a checkpoint file) with its configuration")
    g.add_argument("--overwrite", action="store_true", help="allow --out to replace an earlier run's results (checkpoint.pt, metrics.json, log.jsonl); "
                        "without it such an --out is refused")


def add_config_options(t: argparse.ArgumentParser, experiment: Experiment,
                       before: Optional[Mapping[str, Callable[[argparse._ArgumentGroup], None]]] = None,
                       only: Optional[Collection[str]] = None, default_texts: Optional[Mapping[str, str]] = None,
                       default_out: Optional[str] = None) -> None:
    """The options of a ``train`` command: one per field of its configuration that has an
    :class:`~quasirnn.training.options.Option`, in its help group (:data:`~quasirnn.training.options.GROUPS`,
    in field order; no group: the command's top-level options), plus the output options and
    ``--quiet``/``--progress``. Every option defaults to None (not given, :func:`given_options`);
    its help reads the command's default. ``before`` maps a group to a function adding
    hand-written options at its top. A command that takes some of the fields (``lm finetune``)
    names them in ``only``, ``default_texts`` says what the defaults of some are (e.g. "the trained
    run's"), and ``default_out`` what its ``--out`` is (default: the experiment's).
    """
    defaults = experiment.defaults
    values = {**defaults.to_dict(), **(default_texts or {})}
    options = [(name, option) for name, option in defaults.options() if only is None or name in only]
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
            add_output_options(g, default_out or experiment.default_out)
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


def train_command(experiment: Experiment) -> Callable[[argparse.Namespace], int]:
    """``quasirnn NAME train``: :func:`~quasirnn.training.launch.run_training` of ``experiment`` with the options given."""

    def run_train(args: argparse.Namespace) -> int:
        """Starts or resumes the run; returns :func:`~quasirnn.training.launch.run_training`'s exit status."""
        wall_start = time.perf_counter()
        start = start_or_resume(experiment, given_options(args, experiment.defaults), args.resume, args.out,
                                args.overwrite)
        return run_training(experiment, start, show_progress_bar(args), args.quiet, wall_start)

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


def given_options(args: argparse.Namespace, defaults: TrainingConfig) -> dict[str, Any]:
    """The configuration fields the command line gave (options default to None), by name."""
    return {key: getattr(args, key) for key in defaults.resume_kinds() if getattr(args, key, None) is not None}


