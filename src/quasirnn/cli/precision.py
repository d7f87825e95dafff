"""``--precision {auto,32,bf16,fp16}``: the option of the commands; the mechanics live in :mod:`quasirnn.training.precision`."""

from __future__ import annotations

import argparse
from typing import Union

from quasirnn.training.precision import PRECISIONS, autocast, check_precision, grad_scaler, resolve_precision

__all__ = ["PRECISIONS", "add_precision_option", "autocast", "check_precision", "grad_scaler", "resolve_precision"]


def add_precision_option(p: Union[argparse.ArgumentParser, argparse._ArgumentGroup], default: str = "32") -> None:
    """Adds ``--precision {auto,32,bf16,fp16}`` (default None: the command's default)."""
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help=f"32: float32; bf16/fp16: mixed precision with torch.autocast, the QRNN recurrence "
                        f"accumulated in float32 (fp16 needs CUDA); auto: bf16 for the qrnn cell on a "
                        f"CPU with bfloat16 instructions (AVX512_BF16/AMX), else 32 (default: {default})")
