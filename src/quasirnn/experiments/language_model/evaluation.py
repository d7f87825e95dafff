"""The one evaluation of a language model (QRNN §3.2 perplexity): validation and test during
training (:class:`~quasirnn.experiments.language_model.task.LanguageModelTask`) and ``quasirnn lm
eval`` (:func:`~quasirnn.experiments.language_model.run.evaluate_checkpoint`) both call
:func:`evaluate`."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from quasirnn.data import bptt_batches
from quasirnn.models import LanguageModel
from quasirnn.training.distributed import Distributed
from quasirnn.training.precision import autocast

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(model: LanguageModel, source: Tensor, bptt: int, precision: str = "32",
             dist: Optional[Distributed] = None) -> tuple[float, int]:
    """Average negative log-likelihood of a batchified stream, over every rank's columns.

    The model runs in eval mode (no dropout, no zoneout), window by window of ``bptt`` steps
    (:func:`quasirnn.data.bptt_batches`), carrying the hidden state across windows; it is put back
    in its previous mode afterwards. In a distributed run each rank passes its own columns and
    the log-likelihoods are summed over the ranks (a collective operation: every rank calls it).

    Args:
        model: the language model (unwrapped), on ``source``'s device.
        source: LongTensor (T, B) from :func:`quasirnn.data.batchify` (this rank's columns; B may be 0).
        bptt: window length, ≥ 1.
        precision: a resolved precision ("32", "bf16" or "fp16") the forward passes run in.
        dist: this rank's place in a distributed run, or None.

    Returns:
        (mean NLL in nats per token, NaN when there is no token; the number of predicted tokens,
        (T − 1)·B summed over the ranks). Perplexity is ``exp(mean NLL)``.

    Example::

        >>> from quasirnn.data import batchify
        >>> model = LanguageModel(20, 8, 8, num_layers=1, cell="lstm")
        >>> loss, count = evaluate(model, batchify(torch.randint(0, 20, (30,)), 3), bptt=4)
        >>> count, 0 < loss < 10
        (27, True)
    """
    total, count = 0.0, 0
    if source.size(1) > 0:
        was_training = model.training
        model.eval()
        hidden = None
        try:
            with autocast(precision, source.device):
                for _, inputs, targets in bptt_batches(source, bptt):
                    loss, hidden = model(inputs, hidden, targets, reduction="sum")
                    total += loss.item()
                    count += targets.numel()
        finally:
            model.train(was_training)
    if dist is not None and dist.enabled:
        total, count = dist.sum([total, count])
    return (total / count if count else math.nan), int(count)
