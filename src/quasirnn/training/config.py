"""The typed configuration of a training run: the parts every command shares, and the one place
where a configuration becomes the plain dict a checkpoint stores, and back.

A command's configuration is a dataclass deriving from :class:`TrainingConfig`: its own data
fields, plus the sections ``model`` (its model's arguments, a :class:`ModelOptions`),
:class:`Optimisation` and :class:`RunOptions` (built with :func:`section` and the command's
defaults). Field names are unique across the sections. What a ``--resume`` does with a field is the
field's metadata (:func:`fixed`, :func:`session`, :func:`inherited`), not a list kept elsewhere;
so is the command-line option that gives it (an :class:`~quasirnn.training.options.Option`:
help, value syntax, group). A checkpoint (and metrics.json) holds :meth:`TrainingConfig.to_dict`,
one flat dict of plain values that loads with ``torch.load(weights_only=True)``;
:meth:`TrainingConfig.from_dict` reads it back, upgrading the configurations of older
checkpoints (:meth:`TrainingConfig.upgrade`). A value's meaning is checked once, where it is
consumed: a model's arguments by the model its command builds, the precision when a run
resolves it for its device (:func:`~quasirnn.training.precision.resolve_precision`), the rest in
the dataclasses' ``__post_init__`` (:class:`ConfigError`).

Example::

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Toy(TrainingConfig):
    ...     width: int = fixed(8, "layer width (default: {default})", positive_int)
    ...     optim: Optimisation = section(Optimisation, lr=0.1)
    ...     run: RunOptions = section(RunOptions)
    >>> config = Toy.from_dict({"width": 4, "lr": 0.5, "epochs": 3, "cell": "lstm"})
    >>> config.optim.lr, config.model.cell, config.run.precision
    (0.5, 'lstm', '32')
    >>> Toy().resumed({"width": 4, "lr": 0.5, "epochs": 3}, {"max_steps": 9}, "c.pt").run.max_steps
    9
    >>> [name for name, option in Toy.options()][:3]
    ['width', 'optimizer', 'lr']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from quasirnn.errors import ConfigError
from quasirnn.training.optim import OPTIMIZERS
from quasirnn.training.options import EXECUTION, OPTIMISATION, RUN_LENGTH, Option
from quasirnn.training.options import epoch_list, nonnegative_float, nonnegative_int, positive_int
from quasirnn.training.precision import PRECISION_HELP, PRECISION_METAVAR

__all__ = ["FIXED", "INHERITED", "SESSION", "ModelOptions", "Optimisation", "RunOptions", "TrainingConfig", "fixed",
           "inherited", "section", "session"]

#: A resumed run keeps the checkpoint's value; giving another one is an error (data, model, optimisation).
FIXED = "fixed"
#: A resumed run takes the value given again, else the default (device, logging).
SESSION = "session"
#: A resumed run takes the value given again, else the checkpoint's (run length: epochs, steps, time budget).
INHERITED = "inherited"


def _field(kind: str, default: Any, help: Optional[str], type: Optional[Callable[[str], Any]],
           **option: Any) -> Any:
    metadata = {"resume": kind}
    if help is not None:
        metadata["option"] = Option(help, type, **option)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def fixed(default: Any, help: Optional[str] = None, type: Optional[Callable[[str], Any]] = None, *,
          choices: Optional[Sequence[str]] = None, metavar: Optional[str] = None, group: Optional[str] = None) -> Any:
    """A field that a resumed run keeps from its checkpoint (:data:`FIXED`).

    With ``help``, the ``train`` command offers it as an option: ``help``, ``type``, ``choices``,
    ``metavar`` and ``group`` make its :class:`~quasirnn.training.options.Option`.
    """
    return _field(FIXED, default, help, type, choices=choices, metavar=metavar, group=group)


def session(default: Any, help: Optional[str] = None, type: Optional[Callable[[str], Any]] = None,
            **option: Any) -> Any:
    """A field a resumed run takes from the command line or its default (:data:`SESSION`); ``help``… as in :func:`fixed`."""
    return _field(SESSION, default, help, type, **option)


def inherited(default: Any, help: Optional[str] = None, type: Optional[Callable[[str], Any]] = None,
              **option: Any) -> Any:
    """A field a resumed run takes from the command line, else from its checkpoint (:data:`INHERITED`);
    ``help``… as in :func:`fixed`."""
    return _field(INHERITED, default, help, type, **option)


def section(cls: type, **defaults: Any) -> Any:
    """A field holding a section (:class:`ModelOptions`, :class:`Optimisation`, :class:`RunOptions`) with a
    command's ``defaults``."""
    return field(default_factory=lambda: cls(**defaults), metadata={"section": cls})


@dataclass
class ModelOptions:
    """The arguments of the model a command trains: what every command's ``model`` section has.

    A command's section derives from it with its model's arguments (one field per keyword
    argument of the model's constructor, named as it is: sizes, windows, dropouts, ...), from
    which the command builds its model; the model checks them. The trainer reads ``cell`` only
    (metrics.json reports it).
    """

    cell: str = fixed("qrnn")

    def resolved(self) -> "ModelOptions":
        """The section with what it leaves to defaults made explicit, as a run stores it (here: itself)."""
        return self

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """The flat configuration of an older checkpoint with this section's fields in today's meaning (here: unchanged)."""
        return saved


@dataclass
class Optimisation:
    """How the weights are trained: optimizer, learning rate and its schedule, clipping, seed (the
    batch is each command's: its unit differs).

    The schedule (:class:`~quasirnn.training.schedule.Schedule`): the decay on plateaus
    (``lr_decay``, ``lr_patience``) and the step decay ``when`` act before any averaging; with
    ``optimizer`` "sgd" and ``nonmono`` > 0 the run switches to averaged SGD (NT-ASGD, AWD-LSTM §3)
    once validation stops improving, and keeps the learning rate ``lr`` from then on; with "asgd"
    it averages from the first step, and ``nonmono`` > 0 ends the run at the same condition
    (awd-lstm-lm's fine-tuning).

    Raises:
        ConfigError: a learning rate ≤ 0, a decay outside (0, 1], a negative ``nonmono``, an epoch of
            ``when`` below 1.
    """

    optimizer: str = fixed("adam", "optimizer; asgd = averaged SGD from the first step (default: {default})",
                           choices=OPTIMIZERS, group=OPTIMISATION)
    lr: float = fixed(1e-3, "learning rate (default: {default})", float, group=OPTIMISATION)
    wdecay: float = fixed(0.0, "weight decay (default: {default})", nonnegative_float, group=OPTIMISATION)
    clip: float = fixed(1.0, "gradient norm clipping, 0 = off (default: {default})", nonnegative_float,
                        group=OPTIMISATION)
    lr_decay: float = fixed(0.5, "multiply the learning rate by this when {metric} does not improve after an "
                                 "epoch (before any averaging), 1 = off (default: {default})", float,
                            group=OPTIMISATION)
    lr_patience: int = fixed(0, "epochs without improvement of {metric} tolerated before each decay "
                                "(default: {default})", nonnegative_int, group=OPTIMISATION)
    when: list[int] = fixed([], "divide the learning rate by 10 after each of these epochs, e.g. 12 or 25,35 "
                                "(awd-lstm-lm --when; before any averaging) (default: none)", epoch_list,
                            metavar="EPOCHS", group=OPTIMISATION)
    nonmono: int = fixed(0, "NT-ASGD (AWD-LSTM): with --optimizer sgd, switch to averaged SGD after the first "
                            "epoch whose {metric} is worse than the best before the last NONMONO epochs "
                            "(with asgd: stop there); 0 = off (default: {default})", nonnegative_int,
                         metavar="NONMONO", group=OPTIMISATION)
    seed: int = fixed(1111, "random seed (default: {default})", int, group=OPTIMISATION)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        if self.nonmono < 0:
            raise ConfigError(f"--nonmono must be >= 0, got {self.nonmono}")
        if any(epoch < 1 for epoch in self.when):
            raise ConfigError(f"--when lists epochs, each >= 1, got {self.when}")


@dataclass
class RunOptions:
    """How long a run goes, where and in which precision it runs: the options a ``--resume`` may change.

    ``precision`` is "32", "bf16", "fp16" or "auto"; a run resolves it once for its device
    (:meth:`quasirnn.training.launch.Experiment.precision`), which checks it, and stores it resolved.

    The run's length (``epochs``, ``max_steps``, ``time_budget``) belongs to the run: a resume goes on
    toward the limits the run was started with unless they are given again. ``time_budget`` counts
    the training time of the whole run, every invocation together (``train_time_s`` of its
    progress), so that a resumed run stops where the uninterrupted one would have.

    Raises:
        ConfigError: epochs < 1, negative steps or checkpoint interval.
    """

    epochs: int = inherited(30, "total epochs, >= 1; --resume keeps the run's (default: {default})", positive_int,
                            group=RUN_LENGTH)
    max_steps: Optional[int] = inherited(None, "stop after this many optimizer steps in total, 0 = no limit; "
                                               "--resume keeps the run's (default: no limit)", nonnegative_int,
                                         group=RUN_LENGTH)
    time_budget: Optional[float] = inherited(60.0, "stop once the run has trained this long, all its invocations "
                                                   "together (evaluation excluded), 0 = no limit; --resume keeps "
                                                   "the run's (default: {default})", nonnegative_float,
                                             metavar="MINUTES", group=RUN_LENGTH)
    checkpoint_every: int = inherited(0, "also save a resumable checkpoint every STEPS optimizer steps, 0 = only at "
                                         "the end of each epoch (default: {default})", nonnegative_int,
                                      metavar="STEPS", group=RUN_LENGTH)
    device: str = session("auto", "cpu, cuda, cuda:N or auto (default: {default})", group=EXECUTION)
    threads: Optional[int] = session(None, "CPU threads for torch (default: torch's choice)", positive_int,
                                     group=EXECUTION)
    log_interval: int = session(50, "steps between log lines when the progress bar is off (default: {default})",
                                positive_int, group=EXECUTION)
    precision: str = inherited("32", PRECISION_HELP, metavar=PRECISION_METAVAR, group=EXECUTION)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        for name, value in (("max-steps", self.max_steps), ("checkpoint-every", self.checkpoint_every)):
            if value is not None and value < 0:
                raise ConfigError(f"--{name} must be >= 0, got {value}")


@dataclass
class TrainingConfig:
    """The configuration of a training run (see the module docstring); a command derives its own.

    Attributes:
        model, optim, run: the sections every command has (a command declares its own ``model``).
        validation_metric: what ``{metric}`` reads in the help texts (e.g. "validation BLEU").
    """

    model: ModelOptions = section(ModelOptions)
    optim: Optimisation = section(Optimisation)
    run: RunOptions = section(RunOptions)

    validation_metric = "the validation metric"

    # ------------------------------------------------------------------ plain dicts

    @classmethod
    def options(cls) -> list[tuple[str, Option]]:
        """The fields the command line gives: (flat key, its :class:`~quasirnn.training.options.Option`),
        in the order the class declares them (a field a subclass declares again, such as a section
        with the command's defaults, where the subclass does), sections expanded."""
        order: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in vars(klass).get("__annotations__", {}):
                order = [n for n in order if n != name] + [name]
        fields = sorted(dataclasses.fields(cls), key=lambda f: order.index(f.name))
        return [(f.name, f.metadata["option"]) for f in cls._flat_fields(fields) if "option" in f.metadata]

    @classmethod
    def _flat_fields(cls, fields: Optional[Sequence[dataclasses.Field]] = None) -> list[dataclasses.Field]:
        flat = []
        for f in dataclasses.fields(cls) if fields is None else fields:
            inner = f.metadata.get("section")
            flat.extend(dataclasses.fields(inner) if inner else (f,))
        return flat

    @classmethod
    def resume_kinds(cls) -> dict[str, str]:
        """Every flat key → its resume kind, sections expanded."""
        return {f.name: f.metadata.get("resume", FIXED) for f in cls._flat_fields()}

    def to_dict(self) -> dict[str, Any]:
        """The flat dict of plain values a checkpoint and metrics.json store (sections last)."""
        flat, sections = {}, {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("section"):
                sections.update(dataclasses.asdict(value))
            else:
                flat[f.name] = list(value) if isinstance(value, list) else value
        return {**flat, **sections}

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """The saved configuration of an older checkpoint in today's meaning: one from before
        NT-ASGD trained plain SGD (``nonmono`` 0); then the model section's :meth:`ModelOptions.upgrade`."""
        saved.setdefault("nonmono", 0)
        model = next(f for f in dataclasses.fields(cls) if f.name == "model")
        return model.metadata["section"].upgrade(saved)

    def resolved(self) -> "TrainingConfig":
        """The configuration with what it leaves to defaults made explicit (the model section's
        :meth:`ModelOptions.resolved`), to compare what two configurations mean."""
        return dataclasses.replace(self, model=self.model.resolved())

    @classmethod
    def from_values(cls, values: Mapping[str, Any], base: Optional["TrainingConfig"] = None) -> "TrainingConfig":
        """``base`` (default: the defaults) with the flat ``values`` replaced; unknown keys are ignored.

        Raises:
            ConfigError: the values do not make a valid configuration.
        """
        flat = (base if base is not None else cls()).to_dict()
        flat.update((k, v) for k, v in values.items() if k in flat)
        kwargs = {}
        for f in dataclasses.fields(cls):
            inner = f.metadata.get("section")
            if inner:
                kwargs[f.name] = inner(**{g.name: flat[g.name] for g in dataclasses.fields(inner)})
            else:
                kwargs[f.name] = flat[f.name]
        return cls(**kwargs)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> "TrainingConfig":
        """The configuration a checkpoint saved (:meth:`to_dict`), upgraded from older versions."""
        return cls.from_values(cls.upgrade(dict(saved)))

    def replace(self, **values: Any) -> "TrainingConfig":
        """A copy with flat ``values`` replaced (e.g. ``replace(lr=0.1, window=3)``)."""
        return type(self).from_values(values, base=self)

    def resumed(self, saved: Mapping[str, Any], given: Mapping[str, Any], path: Union[str, Path]) -> "TrainingConfig":
        """The configuration of a run resumed from a checkpoint that saved ``saved``.

        Fixed and inherited fields come from ``saved`` (upgraded), session fields from ``self``
        (the defaults); the values ``given`` on the command line (flat, None = not given) then
        replace the inherited and session ones. A fixed value given again must mean what the
        checkpoint holds (compared :meth:`resolved`, e.g. ``--window 2`` and ``[2, 2, 2]``).

        Raises:
            ConfigError: a fixed field given with a value other than the checkpoint's.
        """
        cls, kinds = type(self), self.resume_kinds()
        old = cls.from_dict(saved).resolved().to_dict()
        fixed_given = {k: v for k, v in given.items() if v is not None and kinds.get(k) == FIXED}
        try:
            again = cls.from_values({**old, **fixed_given}).resolved().to_dict()
        except ConfigError:
            again = {**old, **fixed_given}
        values, conflicts = {}, []
        for key, kind in kinds.items():
            value = given.get(key)
            if kind == FIXED:
                values[key] = old[key]
                if key in fixed_given and again[key] != old[key]:
                    conflicts.append(f"--{key.replace('_', '-')} {value} (checkpoint: {old[key]})")
            elif value is not None:
                values[key] = value
            elif kind == INHERITED:
                values[key] = old[key]
        if conflicts:
            raise ConfigError(f"a resumed run keeps the configuration of {path}; these options differ: "
                              f"{'; '.join(conflicts)}")
        return self.replace(**values)
