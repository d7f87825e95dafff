"""``--precision {32,bf16,fp16}``: the option of the commands; the mechanics live in :mod:`quasirnn.training.precision`."""

from __future__ import annotations

import argparse
from typing import Union

from quasirnn.training.precision import PRECISIONS, autocast, check_precision, grad_scaler

__all__ = ["PRECISIONS", "add_precision_option", "autocast", "check_precision", "grad_scaler"]


def add_precision_option(p: Union[argparse.ArgumentParser, argparse._ArgumentGroup]) -> None:
    """Adds ``--precision {32,bf16,fp16}`` (default None, meaning "32" or the run's setting)."""
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="32: float32; bf16/fp16: mixed precision with torch.autocast, the QRNN recurrence "
                        "accumulated in float32 (fp16 needs CUDA; default: 32)")
