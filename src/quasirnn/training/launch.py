"""Starting or resuming a training run of one experiment, and running it: what every
``quasirnn … train`` command does once its options are parsed.

An :class:`Experiment` names what a run needs from its experiment (configuration defaults,
checkpoint kind, task); :func:`start_or_resume` gives the configuration, output directory and
checkpoint of a new or resumed run from the options given; :func:`run_training` joins the
processes of the run, builds the task and lets :class:`~quasirnn.training.Trainer` train it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch

from quasirnn.checkpoint_file import load_checkpoint, load_module_state
from quasirnn.errors import CheckpointError, ConfigError
from quasirnn.quantization import quantize as quantize_model
from quasirnn.training.config import TrainingConfig
from quasirnn.training.device import use_device
from quasirnn.training.distributed import Distributed, setup_distributed
from quasirnn.training.outdir import refuse_earlier_run, removed_if_unused, sole_writer
from quasirnn.training.precision import resolve_precision
from quasirnn.training.progress import resume_text
from quasirnn.training.run_state import CHECKPOINT_NAME
from quasirnn.training.task import Task
from quasirnn.training.trainer import Trainer

__all__ = ["Experiment", "Start", "TaskAndHeader", "checkpoint_path", "load_run", "run_training", "start_or_resume",
           "trained_model"]


def checkpoint_path(path: Union[str, Path]) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` when ``path`` is a run's output directory."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


#: What an experiment's ``make_task(config, checkpoint, dist)`` returns: the task (holding the run's
#: resolved configuration as ``task.config``), and how the run's first log line describes it
#: (e.g. "qrnn language model: 5,591,210 parameters, vocabulary 10,000").
TaskAndHeader = tuple[Task, str]
#: What :func:`start_or_resume` returns: configuration, output directory, checkpoint (None for a new run) and its path.
Start = tuple[TrainingConfig, Path, Optional[dict], Optional[Path]]


@dataclass(frozen=True)
class Experiment:
    """What a training run needs from its experiment: configuration, checkpoint and task.

    Attributes:
        name: the experiment's command (``lm``).
        out_prefix: a new run's default output is ``runs/PREFIX-CELL-TIMESTAMP``.
        kind, checkpoint_keys: the model kind of its checkpoints and the entries a resumed one must hold.
        defaults: its configuration's defaults; ``new_run(given)``, when set, gives the defaults a new
            run's options replace instead (e.g. a ``--preset``'s recipe).
        make_task: ``make_task(config, checkpoint, dist)`` → (task, header line), see :data:`TaskAndHeader`;
            ``config`` holds the resolved precision.
        prepare: completes a started or resumed configuration (e.g. its data location), when set.
        upgrade: ``upgrade(checkpoint, path)`` brings an older resumed checkpoint to today's layout, when set.
        bf16_cells: the cells whose ``--precision auto`` is bf16 on a CPU with bfloat16 instructions
            (where it was measured to pay; :meth:`precision`).
        excluded_seconds: the trainer's clock of seconds that are not training time (kernels
            compiled on first use), when set: see :class:`~quasirnn.training.Trainer`.
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
    bf16_cells: tuple[str, ...] = ()
    excluded_seconds: Optional[Callable[[], float]] = None

    @property
    def default_out(self) -> str:
        """The help text of ``--out``'s default."""
        return f"runs/{self.out_prefix}-CELL-TIMESTAMP"

    def precision(self, config: TrainingConfig, device: torch.device, given: Optional[str] = None) -> str:
        """The precision a run of ``config`` trains or evaluates in on ``device``: ``given``, else the
        run's (``config.run.precision``), "auto" resolved for its cell (bf16 only for :attr:`bf16_cells`).

        Raises:
            ConfigError: an unknown precision, or one the device cannot run
                (:func:`~quasirnn.training.precision.resolve_precision`).
        """
        return resolve_precision(given or config.run.precision, device,
                                 prefer_bf16=config.model.cell in self.bf16_cells)


def start_or_resume(experiment: Experiment, given: Mapping[str, Any], resume: Optional[str] = None,
                    out: Optional[str] = None, overwrite: bool = False) -> Start:
    """The configuration, output directory, and checkpoint (and its path) of a new or resumed run.

    ``given`` holds the configuration fields given on the command line (flat, by name). With
    ``resume`` (a run's output directory or checkpoint file) the checkpoint (of
    ``experiment.kind``, holding its ``checkpoint_keys``) gives the configuration
    (:meth:`TrainingConfig.resumed`) and the default output directory; otherwise ``given`` over
    the experiment's defaults does, and the output defaults to ``runs/PREFIX-CELL-TIMESTAMP``.

    Raises:
        CheckpointError: ``--resume`` names no checkpoint; an unreadable checkpoint or one of another kind.
        ConfigError: a new run's ``--out`` holds an earlier run's results (without ``--overwrite``;
            :func:`quasirnn.training.outdir.refuse_earlier_run`); invalid options.

    Example::

        >>> import tempfile
        >>> from quasirnn.experiments.language_model.run import EXPERIMENT
        >>> out = Path(tempfile.mkdtemp()) / "run"
        >>> config, out_dir, checkpoint, path = start_or_resume(EXPERIMENT, {"lr": 0.5, "window": 3}, out=str(out))
        >>> config.optim.lr, config.model.window, out_dir == out, checkpoint is None
        (0.5, 3, True, True)
    """
    checkpoint = path = None
    if resume is not None:
        path = checkpoint_path(resume)
        if not path.is_file():
            where = f"{resume} holds no {CHECKPOINT_NAME}" if Path(resume).is_dir() else f"{resume} does not exist"
            raise CheckpointError(f"--resume {resume}: nothing to resume, {where}; start a new run with --out instead")
        checkpoint = load_checkpoint(path, experiment.kind, required=experiment.checkpoint_keys)
        if experiment.upgrade is not None:
            experiment.upgrade(checkpoint, path)
        config = experiment.defaults.resumed(checkpoint["config"], given, path)
        out_dir = Path(out) if out is not None else path.parent
    else:
        defaults = experiment.new_run(given) if experiment.new_run is not None else experiment.defaults
        config = defaults.replace(**given)
        if out is not None:
            out_dir = Path(out)
        else:
            out_dir = Path("runs") / f"{experiment.out_prefix}-{config.model.cell}-{time.strftime('%Y%m%d-%H%M%S')}"
        refuse_earlier_run(out_dir, overwrite)
    if experiment.prepare is not None:
        config = experiment.prepare(config)
    return config, out_dir, checkpoint, path


def load_run(path: Path, experiment: Experiment, required: tuple[str, ...]) -> tuple[dict, Any]:
    """A trained run's checkpoint (of ``experiment.kind``, holding ``required``) and its configuration
    (that of ``experiment.defaults``, older ones upgraded: :meth:`TrainingConfig.from_dict`).

    Args:
        path: the checkpoint file (:func:`checkpoint_path` turns a run's directory into it).
        experiment: gives the checkpoint's kind and the configuration's class.
        required: the entries the checkpoint must hold besides ``config`` (e.g. ``("model", "vocab")``).

    Returns:
        (the checkpoint dict, tensors on the CPU; its configuration, a ``type(experiment.defaults)``).

    Raises:
        CheckpointError: no file at ``path``, an unreadable checkpoint, one of another kind, or one without
            ``required`` (:func:`quasirnn.checkpoint_file.load_checkpoint`).
        ConfigError: a saved configuration that no longer makes a valid one.

    Example::

        >>> import tempfile
        >>> from quasirnn.checkpoint_file import save_checkpoint
        >>> from quasirnn.experiments.language_model.run import EXPERIMENT
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_checkpoint(Path(d) / "checkpoint.pt", EXPERIMENT.kind,
        ...                            EXPERIMENT.defaults.replace(lr=0.5).to_dict(), model={}, vocab=["<eos>"])
        ...     checkpoint, config = load_run(path, EXPERIMENT, ("model", "vocab"))
        ...     load_run(path, EXPERIMENT, ("model", "best_model"))
        Traceback (most recent call last):
        ...
        quasirnn.errors.CheckpointError: ...checkpoint.pt is incomplete: missing best_model
        >>> checkpoint["vocab"], type(config).__name__, config.optim.lr
        (['<eos>'], 'LMConfig', 0.5)
    """
    checkpoint = load_checkpoint(path, experiment.kind, required=required)
    return checkpoint, type(experiment.defaults).from_dict(checkpoint["config"])


def trained_model(model: torch.nn.Module, checkpoint: dict, weights: str, path: Path,
                  device: torch.device, quantize: Optional[str] = None) -> torch.nn.Module:
    """``model`` with the checkpoint's ``weights`` ("best": ``best_model``, else ``model``), in eval mode on ``device``;
    with ``quantize`` (a scheme of :data:`quasirnn.quantization.SCHEMES`, e.g. "int8"), its quantised copy
    (:func:`quasirnn.quantize`: int8 ``nn.Linear`` modules, CPU only).

    Args:
        model: the model the checkpoint's configuration describes (changed in place and returned).
        checkpoint: a loaded checkpoint (:func:`load_run`) holding the entry ``weights`` names.
        weights: "best" (the best validation's weights), anything else: the last ones.
        path: the checkpoint's file, for the error message.
        device: where the model goes.
        quantize: None (default): float weights as saved; "int8": :func:`quasirnn.quantize`'s.

    Raises:
        CheckpointError: weights that do not fit ``model`` (:func:`quasirnn.checkpoint_file.load_module_state`).
        ConfigError: ``quantize`` with a device other than the CPU.
        KeyError: a checkpoint without the entry (``load_run`` with it in ``required`` checks that first).

    Example::

        >>> import tempfile
        >>> from quasirnn.checkpoint_file import load_checkpoint, save_checkpoint
        >>> last, best = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_checkpoint(Path(d) / "checkpoint.pt", "demo", {}, model=last.state_dict(),
        ...                            best_model=best.state_dict())
        ...     checkpoint = load_checkpoint(path, "demo", required=("model", "best_model"))
        >>> model = trained_model(torch.nn.Linear(2, 1), checkpoint, "best", path, torch.device("cpu"))
        >>> torch.equal(model.weight, best.weight), model.training
        (True, False)
        >>> trained_model(torch.nn.Linear(3, 1), checkpoint, "last", path, torch.device("cpu"))
        Traceback (most recent call last):
        ...
        quasirnn.errors.CheckpointError: ...checkpoint.pt: weights do not match the model its config describes: ...
    """
    if quantize is not None and device.type != "cpu":
        raise ConfigError(f"{quantize} quantisation runs on the CPU only, got device {device}: use --device cpu")
    load_module_state(model, checkpoint["best_model" if weights == "best" else "model"], path)
    model = model.to(device).eval()
    return model if quantize is None else quantize_model(model, quantize)


def run_training(experiment: Experiment, start: Start, show_bar: bool = False, quiet: bool = False,
                 wall_start: Optional[float] = None) -> int:
    """The body of every ``quasirnn … train`` command, one process or one torchrun rank.

    ``start`` (:func:`start_or_resume`) gives the configuration, output directory and resumed
    checkpoint; the process joins the run (:func:`quasirnn.training.setup_distributed`,
    threads and memory by :func:`quasirnn.training.device.use_device`), resolves the precision for
    its device (:meth:`Experiment.precision`), rank 0 checks that the output directory is writable
    and takes its lock (:func:`quasirnn.training.outdir.sole_writer`: a directory another process
    writes ends every rank with a one-line error before any file is touched),
    ``experiment.make_task`` loads the data and builds the seeded model on ``dist.device``, and
    :class:`quasirnn.training.Trainer` trains it.

    A run that fails before it wrote anything removes the output directories it created
    (:func:`quasirnn.training.outdir.removed_if_unused`).

    Returns:
        The exit status: 0; 130 when Ctrl-C stopped the training (after saving, evaluating and
        reporting, so that ``train && deploy`` stops); 143 after SIGTERM (checkpoint saved).

    Raises:
        RunLockedError: another process writes the output directory.
        QuasirnnError: whatever ``make_task`` or the trainer raise (one-line messages).
    """
    config, out, checkpoint, checkpoint_file = start
    dist = setup_distributed(config.run.device)
    use_device(dist.device, config.run.threads)
    try:
        config = config.replace(precision=experiment.precision(config, dist.device))
        with removed_if_unused(out), sole_writer(out, dist):
            task, header = experiment.make_task(config, checkpoint, dist)
            trainer = Trainer(task, task.config, out, dist, show_bar=show_bar, quiet=quiet,
                              wall_start=time.perf_counter() if wall_start is None else wall_start,
                              excluded_seconds=experiment.excluded_seconds)
            ranks = f", {dist.world_size} ranks" if dist.enabled else ""
            where = f"device {dist.device}{ranks}, {torch.get_num_threads()} threads, output {out}"
            if checkpoint is None:
                trainer.log(f"training {header}, {where}")
            else:  # which limits it goes on toward: the run's own unless given again
                going_on = resume_text(task.config.run, checkpoint["config"], checkpoint.get("progress", {}))
                trainer.log(f"resuming {header}, {where}; {going_on}")
            status = trainer.fit(checkpoint, checkpoint_file)
        return status
    finally:
        dist.close()
