"""Mixed precision (``--precision {auto,32,bf16,fp16}``, every ``train`` command) for training and evaluation.

Under ``bf16`` or ``fp16`` the model's forward pass runs in ``torch.autocast``: matrix products
(the QRNN gate projections, embeddings' decoder, LSTM cells) run in the 16-bit type, the QRNN
pooling kernels read 16-bit gates and accumulate the recurrence in float32, and the loss is
computed in float32. Parameters and optimizer state stay float32. ``fp16`` also scales the loss
(``torch.amp.GradScaler``) so small gradients do not underflow; ``bf16`` needs no scaling.

``auto`` (the default of ``lm train``; ``classify`` and ``translate`` default to ``32``) is
``bf16`` on a CPU with bfloat16 instructions (AVX512_BF16 or AMX) for the models where it was
measured to pay, and ``32`` everywhere else (:func:`resolve_precision`). A run resolves its
setting once, for its device (:meth:`quasirnn.training.launch.Experiment.precision`). On such a CPU (a 2-core AMD EPYC, one thread) the 20-minute Penn
Treebank runs of BENCHMARKS.md trained the QRNN at 2.9× the float32 tokens/s with the same
validation perplexity after each epoch; the ``nn.LSTM`` gained only 1.26× and learned worse per
epoch, so it stays float32.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

from quasirnn.errors import ConfigError

__all__ = ["PRECISIONS", "PRECISION_HELP", "PRECISION_METAVAR", "autocast", "check_precision", "cpu_has_bf16",
           "grad_scaler", "resolve_precision"]

PRECISIONS = ("auto", "32", "bf16", "fp16")
#: How ``--help`` shows the values of ``--precision`` (:func:`check_precision` checks them).
PRECISION_METAVAR = "{" + ",".join(PRECISIONS) + "}"
#: The help of ``--precision`` (``{default}``: the command's default).
PRECISION_HELP = ("32: float32; bf16/fp16: mixed precision with torch.autocast, the QRNN recurrence accumulated in "
                  "float32 (fp16 needs CUDA); auto: bf16 where it was measured to pay (lm's qrnn cell on a CPU with "
                  "bfloat16 instructions, AVX512_BF16/AMX), else 32 (default: {default})")
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


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (x86 AVX512_BF16 or AMX), as PyTorch's
    CPU kernels (oneDNN) use them; False where PyTorch cannot tell."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        try:
            if getattr(torch.cpu, probe)():
                return True
        except (AttributeError, RuntimeError):
            pass
    return False


def resolve_precision(precision: str, device: torch.device, *, prefer_bf16: bool = True) -> str:
    """``precision`` with ``auto`` replaced: ``bf16`` on a CPU device that :func:`cpu_has_bf16`
    when ``prefer_bf16`` (the caller's model is one where bf16 was measured to pay), ``32``
    otherwise, on other CPUs and on GPUs (not measured there yet); other values are returned as given.

    Raises:
        ConfigError: an unknown precision, or one the device cannot run (:func:`check_precision`).

    Example::

        >>> resolve_precision("32", torch.device("cpu"))
        '32'
        >>> resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_bf16() else "32")
        True
        >>> resolve_precision("auto", torch.device("cpu"), prefer_bf16=False)
        '32'
    """
    check_precision(precision, device)
    if precision != "auto":
        return precision
    return "bf16" if prefer_bf16 and device.type == "cpu" and cpu_has_bf16() else "32"


def autocast(precision: str, device: torch.device):
    """Context manager: ``torch.autocast`` on ``device.type`` in the precision's 16-bit dtype, or
    nothing for "32".

    ``precision`` is a resolved one ("32", "bf16" or "fp16"): a run resolves "auto" once, for its
    device and model (:meth:`quasirnn.training.launch.Experiment.precision`, which calls
    :func:`resolve_precision`), and checks it there; this is entered on every step.

    Raises:
        ValueError: "auto" or an unknown precision (a caller that did not resolve it).

    Example::

        >>> x, w = torch.randn(4, 8), torch.randn(8, 3)
        >>> with autocast("bf16", x.device):
        ...     (x @ w).dtype
        torch.bfloat16
        >>> with autocast("32", x.device):
        ...     (x @ w).dtype
        torch.float32
        >>> autocast("auto", x.device)
        Traceback (most recent call last):
        ...
        ValueError: autocast needs a resolved precision (32, bf16 or fp16), got 'auto': resolve it once per run with resolve_precision
    """
    if precision == "32":
        return contextlib.nullcontext()
    dtype = _DTYPES.get(precision)
    if dtype is None:
        raise ValueError(f"autocast needs a resolved precision (32, bf16 or fp16), got {precision!r}: "
                         f"resolve it once per run with resolve_precision")
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """A loss scaler for ``fp16`` (None otherwise)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
