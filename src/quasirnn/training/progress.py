"""Where a training run stands (:class:`Progress`, saved in its checkpoint), when it stops early (:class:`Limits`),
and how a resumed run goes on (:func:`resume_text`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

__all__ = ["Limits", "Progress", "resume_text"]


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
    """When a training run stops early: after ``max_steps`` optimizer steps in total (0 or None = no
    limit), or once its training time, every invocation together (:attr:`Progress.train_time_s`),
    reaches ``minutes`` (0 or None = no limit; evaluation excluded). Both count the whole run, so a
    resumed run stops where the uninterrupted one would have.

    Example::

        >>> limits = Limits(max_steps=100, minutes=0.5)
        >>> limits.reached(10, train_time_s=12.0) is None
        True
        >>> limits.reached(10, train_time_s=31.0), limits.reached(100, train_time_s=0.0)
        ('time_budget', 'max_steps')
    """

    def __init__(self, max_steps: Optional[int], minutes: Optional[float]) -> None:
        self.max_steps = max_steps or 0
        self.budget_s = (minutes or 0) * 60.0

    def reached(self, step: int, train_time_s: float) -> Optional[str]:
        """``"max_steps"``, ``"time_budget"``, or None to go on, after ``step`` steps and ``train_time_s``
        seconds of training in total."""
        if self.max_steps and step >= self.max_steps:
            return "max_steps"
        if self.budget_s and train_time_s >= self.budget_s:
            return "time_budget"
        return None


def resume_text(run: Any, saved_config: Mapping[str, Any], saved_progress: Mapping[str, Any]) -> str:
    """How a resumed run goes on, for its first line: where it stands and toward which limits, each
    with where its value comes from (the checkpoint, given again, or the default where an older
    checkpoint did not save it), or that it already reached one.

    Args:
        run: the resumed run's :class:`~quasirnn.training.config.RunOptions` (``epochs``, ``max_steps``,
            ``time_budget``).
        saved_config: the configuration the checkpoint saved (a flat dict).
        saved_progress: the progress the checkpoint saved (:class:`Progress` as a dict; missing counters read 0).

    Example::

        >>> from types import SimpleNamespace
        >>> run = SimpleNamespace(epochs=40, max_steps=120, time_budget=60.0)
        >>> resume_text(run, {"epochs": 40, "max_steps": 120}, {"epoch": 1, "step": 57, "train_time_s": 30.0})
        'at step 57 toward --max-steps 120 (from the checkpoint), --epochs 40 (from the checkpoint),
         --time-budget 60 minutes of training (default; 0.5 spent)'
        >>> run.max_steps = 57
        >>> resume_text(run, {"epochs": 40, "max_steps": 120}, {"epoch": 1, "step": 57})
        'at step 57: --max-steps 57 (given) is already reached, so it only evaluates; give a larger limit to train on'
    """

    def origin(key: str, value: Any) -> str:
        if key not in saved_config:
            return "default"
        return "from the checkpoint" if saved_config[key] == value else "given"

    step, spent_s = saved_progress.get("step", 0), saved_progress.get("train_time_s", 0.0)
    limits = []
    if run.max_steps:
        limits.append(("max_steps", f"--max-steps {run.max_steps} ({origin('max_steps', run.max_steps)})"))
    limits.append(("epochs", f"--epochs {run.epochs} ({origin('epochs', run.epochs)})"))
    if run.time_budget:
        limits.append(("time_budget", f"--time-budget {run.time_budget:g} minutes of training "
                                      f"({origin('time_budget', run.time_budget)}; {spent_s / 60:.1f} spent)"))
    reached = Limits(run.max_steps, run.time_budget).reached(step, spent_s)
    if reached is None and saved_progress.get("epoch", 0) >= run.epochs:
        reached = "epochs"
    if reached is not None:
        return (f"at step {step}: {dict(limits)[reached]} is already reached, so it only evaluates; "
                f"give a larger limit to train on")
    return f"at step {step} toward {', '.join(text for _, text in limits)}"
