"""What a run's optimisation does from epoch to epoch: :class:`Schedule`.

After each epoch's validation the trainer hands the value to :meth:`Schedule.end_of_epoch`, which
applies the configuration's schedules (:class:`~quasirnn.training.config.Optimisation`):

- the decay on plateaus (``lr_decay`` after ``lr_patience`` + 1 validations without improvement,
  :func:`~quasirnn.training.optim.plateau_scheduler`) and the step decay ``when`` (÷ 10 after the
  listed epochs, awd-lstm-lm's ``--when``), both while the weights are not averaged;
- NT-ASGD, the non-monotonically triggered averaged SGD of AWD-LSTM (Merity, Keskar & Socher
  2017, §3), exactly as awd-lstm-lm's ``main.py`` runs it: with ``optimizer`` "sgd" and
  ``nonmono`` = n > 0, the validation values of the SGD epochs are kept, and at the end of the
  first epoch whose value is worse than the best of those before the last n
  (``len(history) > n and value > min(history[:-n])``, compared before the value joins them), the
  optimizer becomes averaged SGD (``torch.optim.ASGD``, ``t0=0, lambd=0``, the configured ``lr``
  and weight decay); from then on the learning rate stays;
- with ``optimizer`` "asgd" the weights are averaged from the first step, and ``nonmono`` = n > 0
  ends the run at the same condition (awd-lstm-lm's ``finetune.py``).

While the weights are averaged, the model that is validated, tested and saved as the run's
``model`` is the average (:meth:`Schedule.averaged` puts ASGD's ``ax`` in place of the
parameters, as awd-lstm-lm swaps it in to evaluate and save), and training goes on from the raw
weights, which a checkpoint keeps as ``training_weights`` (:meth:`Schedule.checkpoint`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from torch import nn

from quasirnn.checkpoint_file import load_module_state
from quasirnn.training.config import Optimisation
from quasirnn.training.optim import make_optimizer, plateau_scheduler

__all__ = ["EpochOutcome", "Schedule"]


@dataclass
class EpochOutcome:
    """What :meth:`Schedule.end_of_epoch` did.

    Attributes:
        improved: the value is better than every earlier one (or there was no value).
        events: what changed, for the epoch's log line (e.g. "switched to averaged SGD (NT-ASGD)").
        stop: the run ends here (``asgd`` with ``nonmono``: validation stopped improving).
    """

    improved: bool = True
    events: list[str] = field(default_factory=list)
    stop: bool = False


class Schedule:
    """The optimizer of a run and its changes after each validation (see the module docstring).

    Args:
        model: the model whose trainable parameters are optimised (unwrapped).
        optim: the optimisation section: optimizer, lr, wdecay, lr_decay, lr_patience, when, nonmono.
        mode: "min" or "max": which way the validation value improves.

    Attributes:
        optimizer: the current optimizer (SGD becomes ASGD at the NT-ASGD switch).
        plateau: the decay on plateaus (ReduceLROnPlateau) on the first optimizer.
        averaging: the weights are being averaged (the optimizer is ASGD).
        history: the validation values NT-ASGD compares (those before averaging; all of them with "asgd").
        best: the best validation value so far (None before any).
        stopped: an "asgd" run met its stopping condition.

    Example::

        >>> model = nn.Linear(2, 1)
        >>> schedule = Schedule(model, Optimisation(optimizer="sgd", lr=1.0, lr_decay=1.0, nonmono=2), "min")
        >>> [schedule.end_of_epoch(e, v).events for e, v in enumerate([3.0, 2.0, 2.5, 2.2, 2.1], 1)]
        [[], [], [], [], ['switched to averaged SGD (NT-ASGD)']]
        >>> type(schedule.optimizer).__name__, schedule.history
        ('ASGD', [3.0, 2.0, 2.5, 2.2, 2.1])
    """

    def __init__(self, model: nn.Module, optim: Optimisation, mode: str) -> None:
        self.model, self.optim, self.mode = model, optim, mode
        self.optimizer = make_optimizer(optim.optimizer, model, optim.lr, optim.wdecay)
        self.plateau = plateau_scheduler(self.optimizer, mode, optim.lr_decay, optim.lr_patience)
        self.averaging = optim.optimizer == "asgd"
        self.history: list[float] = []
        self.best: Optional[float] = None
        self.stopped = False

    @property
    def averages(self) -> bool:
        """The run averages its weights, now or after the NT-ASGD switch."""
        return self.optim.optimizer == "asgd" or (self.optim.optimizer == "sgd" and self.optim.nonmono > 0)

    def _better(self, value: float, than: float) -> bool:
        return value < than if self.mode == "min" else value > than

    def _not_improving(self, value: float) -> bool:
        """awd-lstm-lm's condition: worse than the best before the last ``nonmono`` values."""
        n = self.optim.nonmono
        if len(self.history) <= n:
            return False
        earlier = self.history[:-n]
        return self._better(min(earlier) if self.mode == "min" else max(earlier), value)

    def end_of_epoch(self, epoch: int, value: float) -> EpochOutcome:
        """Applies the schedules after the validation of ``epoch`` (1-based) gave ``value`` (NaN: no
        validation data; then nothing changes)."""
        outcome = EpochOutcome()
        if math.isnan(value):
            return outcome
        outcome.improved = self.best is None or self._better(value, self.best)
        if outcome.improved:
            self.best = value
        optim = self.optim
        if not self.averaging:
            self.plateau.step(value)
            if optim.optimizer == "sgd" and optim.nonmono > 0 and self._not_improving(value):
                self.optimizer = make_optimizer("asgd", self.model, optim.lr, optim.wdecay)
                self.averaging = True
                outcome.events.append("switched to averaged SGD (NT-ASGD)")
            if epoch in optim.when:  # awd-lstm-lm: after the switch, on the optimizer it leaves
                for group in self.optimizer.param_groups:
                    group["lr"] /= 10.0
                outcome.events.append(f"learning rate ÷ 10 (--when {epoch})")
            self.history.append(value)
        elif optim.optimizer == "asgd" and optim.nonmono > 0:
            self.stopped = self._not_improving(value)
            self.history.append(value)
            if self.stopped:
                outcome.events.append(f"no improvement on the epochs before the last {optim.nonmono}: stopping")
        outcome.stop = self.stopped
        return outcome

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """Runs the block with the averaged weights in the model while averaging (else as it is),
        then puts the raw weights back. The parameters' storage is swapped, not copied into: a
        state dict taken inside holds the averaged values after the block."""
        swapped = []
        if self.averaging:
            with torch.no_grad():
                for p in self.model.parameters():
                    ax = self.optimizer.state.get(p, {}).get("ax")
                    if ax is not None:
                        swapped.append((p, p.data))
                        p.data = ax.clone()
        try:
            yield
        finally:
            for p, raw in swapped:
                p.data = raw

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint's entries of the schedule: ``schedule`` (phase, history, best, stopped), and
        ``training_weights``, the raw weights, while averaging (``model`` then holds the average)."""
        entries: dict[str, Any] = {"schedule": {"averaging": self.averaging, "history": list(self.history),
                                                "best": self.best, "stopped": self.stopped}}
        if self.averaging:
            entries["training_weights"] = self.model.state_dict()
        return entries

    def load_phase(self, checkpoint: dict[str, Any]) -> None:
        """Before the optimizer state is restored: the phase, history and best of ``checkpoint``
        (the optimizer becomes ASGD when it was averaging). A checkpoint from before NT-ASGD has
        none: its run never averaged."""
        state = checkpoint.get("schedule")
        if state is None:
            return
        if state["averaging"] and not self.averaging:
            self.optimizer = make_optimizer("asgd", self.model, self.optim.lr, self.optim.wdecay)
        self.averaging = bool(state["averaging"])
        self.history = [float(v) for v in state["history"]]
        self.best = state["best"]
        self.stopped = bool(state.get("stopped", False))

    def load_weights(self, checkpoint: dict[str, Any], path: Path) -> None:
        """After the checkpoint's ``model`` was loaded: the raw weights under it, while averaging; the
        best value from the plateau decay's record for a checkpoint from before NT-ASGD.

        Raises:
            CheckpointError: raw weights that do not fit the model.
        """
        if "training_weights" in checkpoint:
            load_module_state(self.model, checkpoint["training_weights"], path)
        if "schedule" not in checkpoint and math.isfinite(self.plateau.best):
            self.best = float(self.plateau.best)
