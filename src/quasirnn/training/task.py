"""What a training command gives the :class:`~quasirnn.training.trainer.Trainer`: a :class:`Task`.

The trainer owns the epochs, the optimizer step, limits, signals, checkpoints, logs, the
learning-rate decay and the run's metrics; a task owns its model, data and numbers:

- its model (unwrapped), its checkpoint ``kind`` and the metric its logs show (``ppl`` or
  ``accuracy``), with the direction of the validation value that drives the decay (``mode``);
- this rank's training batches of an epoch, from a position within it (:meth:`Task.train_batches`);
- the loss of one batch (:meth:`Task.loss`), with statistics the trainer sums over the ranks;
- validation and the final test (:meth:`Task.validate`, :meth:`Task.test`), over all ranks;
- its own checkpoint payload (vocabulary, data position, best weights, ...) and metrics keys;
- the texts of its log lines.

A task's methods that take part in collective operations (validation, test, :meth:`Task.state`)
are called on every rank at the same point.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Union

import torch
from torch import nn

from quasirnn.training.progress import Progress

__all__ = ["BestWeights", "StepOutput", "Task", "Validation", "state_copy"]

Number = Union[int, float, torch.Tensor]


@dataclass
class StepOutput:
    """The loss of one training batch on this rank.

    Attributes:
        loss: scalar tensor to backpropagate. In a distributed run the gradients are averaged over
            the ranks, so a rank holding ``n_r`` of the ``n`` items of the global batch scales its
            mean loss by ``n_r · world_size / n`` (exactly 1 when the shards are equal).
        mean_loss: this rank's mean loss (a scalar tensor or float, detached), the logged loss.
        count: the items ``mean_loss`` averages over on this rank (its weight in the global mean).
        stats: further counts summed over the ranks: ``tokens`` (required), and e.g. ``examples``,
            ``correct``. Values may be tensors (read once, after the optimizer step).
        lr_scale: learning-rate factor for this step only (variable-length BPTT).

    Example::

        >>> import torch
        >>> loss = torch.tensor([2.0, 4.0], requires_grad=True).mean()
        >>> out = StepOutput(loss, mean_loss=loss.detach(), count=2, stats={"tokens": 2})
        >>> float(out.mean_loss), out.lr_scale
        (3.0, 1.0)
    """

    loss: torch.Tensor
    mean_loss: Number
    count: Number
    stats: dict[str, Number] = field(default_factory=dict)
    lr_scale: float = 1.0


@dataclass
class Validation:
    """The result of a validation pass.

    Attributes:
        value: the number the learning-rate decay compares (loss, accuracy); NaN = none.
        record: JSON-ready entries for the epoch history and log.jsonl (e.g. ``{"val_ppl": 120.4}``).
        log: the values written to log.jsonl (``loss``, ``ppl``, ``accuracy`` or ``bleu``).
        text: the log line's part, e.g. ``"valid ppl 120.40"``.

    Example::

        >>> import math
        >>> loss = 4.79
        >>> v = Validation(loss, {"val_ppl": round(math.exp(loss), 2)}, {"loss": loss}, f"valid ppl {math.exp(loss):.2f}")
        >>> v.text
        'valid ppl 120.30'
    """

    value: float
    record: dict[str, Any]
    log: dict[str, Any]
    text: str


class Task(ABC):
    """A training command's model, data and numbers (see the module docstring).

    Attributes:
        kind: the checkpoint's model kind.
        metric: the name of the quality metric in log.jsonl (``"ppl"``, ``"accuracy"`` or ``"bleu"``).
        mode: ``"min"`` or ``"max"``: which way :attr:`Validation.value` improves.
        model: the (unwrapped) model, on its device.
    """

    kind: str
    metric: str
    mode: str
    model: nn.Module

    @abstractmethod
    def batches_per_epoch(self) -> int:
        """Training batches (optimizer steps) in an epoch."""

    def batch_number(self, position: int) -> int:
        """How many batches of the epoch come before ``position`` (by default the position is that count)."""
        return position

    def epoch_fraction(self, position: int) -> float:
        """The part of an epoch done at ``position``, in [0, 1] (by default batches done / batches per epoch)."""
        return position / max(1, self.batches_per_epoch())

    @abstractmethod
    def train_batches(self, epoch: int, position: int) -> Iterator[tuple[int, Any]]:
        """This rank's training batches of ``epoch`` (0-based), starting at ``position``.

        Yields:
            (the position after this batch, the batch as :meth:`loss` takes it).
        """

    def end_epoch(self) -> None:
        """Called after the last batch of an epoch (before validation); e.g. resets carried state."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> StepOutput:
        """The loss of ``batch`` through ``model`` (the DistributedDataParallel wrapper in a distributed run)."""

    @abstractmethod
    def step_values(self, mean_loss: float, stats: dict[str, float]) -> dict[str, Any]:
        """The metric of one step or window for log.jsonl, e.g. ``{"ppl": 340.2}``, ``{"accuracy": 0.81}``, or ``{}``,
        from the global mean loss and the summed ``stats``."""

    @abstractmethod
    def window_text(self, mean_loss: float, stats: dict[str, float], seconds: float) -> tuple[dict[str, str], str]:
        """The progress bar's fields and the periodic log line's part for a window of steps."""

    @abstractmethod
    def rate_text(self, progress: Progress) -> str:
        """The training speed so far, e.g. ``"5,012 tok/s"``."""

    @abstractmethod
    def validate(self, step: int) -> Validation:
        """Evaluates the current weights on the validation data (all ranks take part)."""

    @abstractmethod
    def test(self) -> Any:
        """The final evaluation on the test data (all ranks take part); passed to :meth:`metrics` and :meth:`done_text`."""

    @abstractmethod
    def test_log(self, result: Any) -> dict[str, Any]:
        """The values of the test record in log.jsonl."""

    @abstractmethod
    def state(self, progress: Progress) -> dict[str, Any]:
        """The task's checkpoint payload (vocabulary, carried state, ...); every rank calls it."""

    @abstractmethod
    def load_state(self, checkpoint: dict[str, Any], progress: Progress) -> None:
        """Restores what :meth:`state` saved (``checkpoint`` is the whole file's dict)."""

    @abstractmethod
    def metrics(self, progress: Progress, test: Optional[Any]) -> dict[str, Any]:
        """The task's entries of metrics.json (``test`` is None before the final evaluation)."""

    @abstractmethod
    def done_text(self, progress: Progress, test: Any) -> str:
        """The final line's results, e.g. ``"valid ppl 120.40 | test ppl 115.20 | 5,012 tok/s"``."""


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state dict."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class BestWeights:
    """The weights of a task's best validation so far, with its value and step (-1: none yet).

    A task decides what "best" is and calls :meth:`keep`; the final test runs inside :meth:`applied`.

    Example::

        >>> model, best = nn.Linear(2, 1), BestWeights()
        >>> best.keep(model, 0.7, step=3)
        >>> with torch.no_grad():
        ...     _ = model.weight.add_(1.0)
        >>> with best.applied(model):
        ...     torch.equal(model.weight, best.state["weight"])
        True
    """

    def __init__(self) -> None:
        self.value, self.step = -1.0, -1
        self.state: Optional[dict[str, torch.Tensor]] = None

    def keep(self, model: nn.Module, value: float, step: int) -> None:
        """Records ``model``'s current weights as the best, of validation ``value`` at ``step``."""
        self.value, self.step, self.state = value, step, state_copy(model)

    def load(self, value: float, step: int, state: dict[str, torch.Tensor]) -> None:
        """Restores what a checkpoint saved (:meth:`weights`, the value and the step)."""
        self.value, self.step, self.state = value, step, state

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The best weights for a checkpoint (``model``'s own while none was kept)."""
        return self.state if self.state is not None else state_copy(model)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Runs the block with the best weights in ``model``, then puts its own back."""
        last = state_copy(model)
        if self.state is not None:
            model.load_state_dict(self.state)
        try:
            yield
        finally:
            model.load_state_dict(last)
