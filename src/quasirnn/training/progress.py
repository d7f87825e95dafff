"""Where a training run stands (:class:`Progress`, saved in its checkpoint) and when it stops early (:class:`Limits`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

__all__ = ["Limits", "Progress"]


@dataclass
class Progress:
    """Counters of a run, saved in the checkpoint and restored by ``--resume``.

    Attributes:
        epoch: completed epochs.
        position: where the current epoch goes on, in the task's own unit (the language
            model's time step in its stream, the classifier's batch number); 0 at an epoch's start.
        step: optimizer steps in total.
        train_tokens: tokens trained on, over all ranks.
        train_examples: examples (sequences, reviews) trained on, over all ranks (0 when the
            task does not count them).
        train_time_s: seconds spent in training steps (evaluation and checkpoints excluded), all
            invocations together.
        history: one dict per completed epoch: epoch, step, the validation results, lr, train_time_s.

    Example::

        >>> saved = {"epoch": 2, "position": 0, "step": 300, "train_tokens": 9600, "unknown": 1}
        >>> progress = Progress.from_dict(saved)
        >>> progress.epoch, progress.step, progress.history
        (2, 300, [])
    """

    epoch: int = 0
    position: int = 0
    step: int = 0
    train_tokens: int = 0
    train_examples: int = 0
    train_time_s: float = 0.0
    history: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "Progress":
        """The progress a checkpoint saved (keys it does not know are ignored).

        Raises:
            TypeError: ``saved`` lacks ``epoch``, ``position`` or ``step``.
        """
        if not all(key in saved for key in ("epoch", "position", "step")):
            raise TypeError("a progress record needs epoch, position and step")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})

    def per_second(self, count: float) -> Optional[float]:
        """``count`` (e.g. :attr:`train_tokens`) per second of training time; None before any."""
        return count / self.train_time_s if self.train_time_s else None


class Limits:
    """When a training run stops early: ``max_steps`` optimizer steps in total (0 = none), or
    ``minutes`` of training time spent in this invocation (0 or None = none; evaluation excluded).

    Attributes:
        session_s: training seconds spent in this invocation (add them with :meth:`spend`).

    Example::

        >>> limits = Limits(max_steps=100, minutes=0.5)
        >>> limits.reached(10) is None
        True
        >>> limits.spend(31.0)
        >>> limits.reached(10), limits.reached(100)
        ('time_budget', 'max_steps')
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
