"""Mixed precision (``--precision {32,bf16,fp16}``) for training and evaluation.

Under ``bf16`` or ``fp16`` the model's forward pass runs in ``torch.autocast``: matrix products
(the QRNN gate projections, embeddings' decoder, LSTM cells) run in the 16-bit type, the QRNN
pooling kernels read 16-bit gates and accumulate the recurrence in float32, and the loss is
computed in float32. Parameters and optimizer state stay float32. ``fp16`` also scales the loss
(``torch.amp.GradScaler``) so small gradients do not underflow; ``bf16`` needs no scaling.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

from quasirnn.errors import ConfigError

__all__ = ["PRECISIONS", "autocast", "check_precision", "grad_scaler"]

PRECISIONS = ("32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Raises ConfigError for an unknown precision or one the device cannot run.

    ``fp16`` needs CUDA (CPU autocast in float16 is slow and has no loss scaling here); ``bf16``
    runs on CUDA and on CPUs.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device (got {device}); use bf16 or 32 on the CPU")


def autocast(precision: str, device: torch.device):
    """Context manager: ``torch.autocast`` in the precision's 16-bit dtype, or nothing for "32"."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """A loss scaler for ``fp16`` (None otherwise)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
