"""Optimisation pieces of the trainer: the optimizer, one update step, the learning-rate decay on plateaus
(what changes them from epoch to epoch: :mod:`quasirnn.training.schedule`)."""

from __future__ import annotations

import sys
from typing import Optional

import torch
from torch import nn

from quasirnn._checks import check_int

__all__ = ["OPTIMIZERS", "make_optimizer", "optimizer_step", "plateau_scheduler"]

#: Optimizers a training command accepts (``--optimizer``).
OPTIMIZERS = ("adam", "adamw", "sgd", "asgd")


def make_optimizer(name: str, model: nn.Module, lr: float, wd: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer ``name`` for ``model``'s trainable parameters, with learning rate ``lr`` and
    weight decay ``wd`` (L2, added to the gradient; decoupled for adamw).

    ``asgd`` is averaged SGD as AWD-LSTM uses it (Merity et al. 2017, §3; Polyak & Juditsky 1992):
    ``torch.optim.ASGD`` with ``t0=0, lambd=0``, i.e. plain SGD steps at the constant rate ``lr``
    whose iterates are averaged from the first step on (the average is the optimizer state ``ax``).

    Raises:
        ValueError: an unknown name.

    Example::

        >>> make_optimizer("asgd", nn.Linear(2, 1), lr=30.0).defaults["t0"]
        0
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "asgd":
        return torch.optim.ASGD(params, lr=lr, t0=0, lambd=0.0, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float = 0.0,
                   lr_scale: float = 1.0, scaler: Optional[torch.amp.GradScaler] = None) -> None:
    """Backpropagates ``loss`` and takes one optimizer step.

    Clears the gradients, backpropagates (through ``scaler`` for fp16, which also unscales the
    gradients before clipping), clips the gradient norm to ``clip`` (0 = off), and steps with every
    learning rate multiplied by ``lr_scale`` for this step only. Under DistributedDataParallel the
    backward pass averages the gradients over the ranks, so every rank clips the same norm.

    Args:
        model: the model (or its DistributedDataParallel wrapper) whose parameters are clipped.
        loss: scalar tensor attached to the graph.
    """
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    saved = [group["lr"] for group in optimizer.param_groups]
    if lr_scale != 1.0:
        for group in optimizer.param_groups:
            group["lr"] *= lr_scale
    if scaler is not None:
        scaler.step(optimizer)  # skips the step if the scaled gradients overflowed
        scaler.update()
    else:
        optimizer.step()
    for group, lr in zip(optimizer.param_groups, saved):
        group["lr"] = lr


def plateau_scheduler(optimizer: torch.optim.Optimizer, mode: str, decay: float,
                      patience: int = 0) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Multiplies the learning rate by ``decay`` after ``patience`` + 1 validations in a row that do
    not improve on the best (then counts again from zero).

    Args:
        mode: ``"min"`` (a loss or perplexity) or ``"max"`` (an accuracy).
        decay: in (0, 1]; 1 keeps the learning rate (the scheduler still tracks the best value).
        patience: validations without improvement that are tolerated before a decay (0: decay at the first).

    Returns:
        A ReduceLROnPlateau without threshold: a value not strictly better than the best so far
        counts as no improvement.

    Raises:
        ValueError: ``patience`` < 0.
    """
    check_int("patience", patience, minimum=0)
    if decay < 1:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=decay, patience=patience,
                                                          threshold=0.0)
    # ReduceLROnPlateau refuses factor 1: an unreachable patience keeps the rate instead
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=sys.maxsize,
                                                      threshold=0.0)
