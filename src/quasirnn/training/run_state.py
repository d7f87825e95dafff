"""Checkpoint files of a training run: ``OUT/checkpoint.pt`` and ``OUT/metrics.json``.

A training checkpoint holds everything a run needs to go on exactly where it stopped::

    model, optimizer, scheduler, scaler        state dicts (scaler: None unless fp16; model: the averaged
                                               weights while the schedule averages)
    schedule, training_weights                 the schedule's phase and history; the raw weights while it
                                               averages (:mod:`quasirnn.training.schedule`)
    progress                                   :class:`~quasirnn.training.progress.Progress` as a dict
    rng, rng_ranks                             torch RNG state of rank 0, and of every rank
    world_size                                 ranks of the run that saved it
    metrics                                    what metrics.json says
    ...                                        the task's own payload (vocabulary, data position, ...)

Both files are written atomically (:func:`quasirnn.checkpoint_file.atomic_write`): the new bytes go
to a temporary file that replaces the old one only once complete, so a crash at any moment
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from quasirnn.checkpoint_file import atomic_write_text, load_module_state, save_checkpoint
from quasirnn.errors import CheckpointError
from quasirnn.training.progress import Progress

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "restore_training_state",
    "rng_state",
    "save_run",
    "set_rng_state",
]

#: File names inside a run's output directory.
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's CPU RNG state (and the device's, on CUDA), for a checkpoint."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restores what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_run(out: Path, kind: str, config: dict[str, Any], state: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Writes ``OUT/checkpoint.pt`` (``state`` and ``metrics``), then ``OUT/metrics.json``, each atomically.

    Args:
        kind: the checkpoint's model kind (e.g. ``"language_model"``).
        state: the payload: plain values and tensors only (see :func:`quasirnn.checkpoint_file.save_checkpoint`).
    """
    save_checkpoint(Path(out) / CHECKPOINT_NAME, kind, config, **state, metrics=metrics)
    atomic_write_text(Path(out) / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")


def restore_training_state(checkpoint: dict[str, Any], path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any, scaler: Optional[torch.amp.GradScaler]) -> Progress:
    """Loads weights, optimizer, scheduler and scaler state from ``checkpoint``; returns its progress.

    Checkpoints written before the shared trainer have no scheduler state: the best validation
    value of their progress record (``best_val_loss``, ``best_epoch_val_accuracy`` or
    ``best_val_bleu``) seeds it.

    Raises:
        CheckpointError: weights, optimizer state or progress record that do not match the model.
    """
    load_module_state(model, checkpoint["model"], path)
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
        progress = Progress.from_dict(checkpoint["progress"])
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: optimizer state or progress record does not match the model: {exc}") from None
    if checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    else:
        for key in ("best_val_loss", "best_epoch_val_accuracy", "best_val_bleu"):
            if key in checkpoint["progress"]:
                scheduler.best = checkpoint["progress"][key]
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    return progress
