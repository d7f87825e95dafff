"""``lm train``'s softmax options: ``--cutoffs`` parsing, and resolving ``--softmax auto`` from the training data."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from quasirnn.models.softmax import default_cutoffs

__all__ = ["ADAPTIVE_FROM", "cutoff_list", "resolve_softmax"]

#: ``--softmax auto`` is adaptive from this vocabulary size on (WikiText-2's 33,278 words), full below (PTB's 10,000).
ADAPTIVE_FROM = 20_000


def cutoff_list(text: str) -> list[int]:
    """``--cutoffs``: a comma-separated list of increasing integers ≥ 1."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}") from None
    if any(v < 1 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise argparse.ArgumentTypeError(f"cutoffs must be increasing integers >= 1, got {text!r}")
    return values


def resolve_softmax(config: dict[str, Any], train: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Resolves ``config["softmax"]`` "auto" and ``config["cutoffs"]`` None in place, from the training ids.

    Returns:
        The word ids by decreasing training frequency (V,), ties in id order (the adaptive softmax's ranks).
    """
    counts = torch.bincount(train, minlength=vocab_size)
    if config.get("softmax", "full") == "auto":
        adaptive = config.get("cutoffs") is not None or vocab_size >= ADAPTIVE_FROM
        config["softmax"] = "adaptive" if adaptive else "full"
    if config["softmax"] == "adaptive" and config.get("cutoffs") is None:
        config["cutoffs"] = default_cutoffs(counts)
    return torch.sort(counts, descending=True, stable=True).indices
