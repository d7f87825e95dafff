"""Guard rails of a training run: a loss or a weight that is no longer a finite number stops the run."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from quasirnn.errors import QuasirnnError

__all__ = ["DivergedError", "check_loss", "check_parameters"]


class DivergedError(QuasirnnError):
    """The loss or the parameters became NaN or infinite: the run stops without saving over the
    last good checkpoint.

    Attributes:
        step: the optimizer step at which it was noticed.
    """

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def check_loss(loss: float, step: int, epoch: int) -> None:
    """Raises DivergedError when the training loss of ``step`` (1-based, in epoch ``epoch``, 1-based) is NaN or ±inf."""
    if not math.isfinite(loss):
        raise DivergedError(f"the training loss became {loss} at step {step} (epoch {epoch})", step)


def check_parameters(parameters: Iterable[torch.Tensor], step: int) -> None:
    """Raises DivergedError when a parameter holds NaN or ±inf after ``step`` steps (checked before each save)."""
    for p in parameters:
        if not bool(torch.isfinite(p.detach()).all()):
            raise DivergedError(f"the weights hold NaN or infinite values after step {step}", step)
