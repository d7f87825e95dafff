"""The neural cache at evaluation (Grave, Joulin & Usunier 2017, "Improving Neural Language Models
with a Continuous Cache", arXiv 1612.04426; salesforce/awd-lstm-lm ``pointer.py``).

The model's last-layer outputs h_i and the words w_{i+1} that followed them are kept for the last
``window`` positions of the stream. At position t the next word is predicted by

    p(w | h_t) = (1 − λ) p_vocab(w | h_t) + λ p_cache(w | h_t),
    p_cache(w | h_t) ∝ Σ_{i = t−W}^{t−1} 1[w_{i+1} = w] exp(θ h_t · h_i)    (Grave et al. §3, eq. 4–5)

with W = ``window``, θ = ``theta``, λ = ``lambd`` (pointer.py's ``--window``, ``--theta``,
``--lambdasm``). As in pointer.py, the split is one stream (batch size 1), the cache carries over
BPTT windows, and only positions t > W (0-based: once W + 1 words have been read) use it;
the first W + 1 predictions are the model's own. pointer.py also leaves the cache out at the first
word of every later window of ``--bptt`` words (its README says BPTT does not change the result);
here the result does not depend on ``bptt``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from quasirnn.data import bptt_batches
from quasirnn.errors import ConfigError
from quasirnn.models import LanguageModel
from quasirnn.training.precision import autocast

__all__ = ["CacheEvaluation", "NeuralCache", "evaluate_with_cache"]


@dataclass(frozen=True)
class NeuralCache:
    """The neural cache's settings (``lm eval --cache-pointer``'s ``--cache-window``,
    ``--cache-theta``, ``--cache-lambda``; defaults per preset:
    :func:`~quasirnn.experiments.language_model.presets.cache_defaults`).

    Attributes:
        window: W ≥ 1, the number of previous positions (h_i, w_{i+1}) the cache holds.
        theta: θ ≥ 0, the flatness of the cache's distribution (θ = 0: uniform over the window,
            a unigram cache; Grave et al. §3).
        lambd: λ in [0, 1], the cache's share of the mixture (0: the model alone, 1: the cache alone).

    Raises:
        ConfigError: a value out of range, naming its option.

    Example::

        >>> NeuralCache(500, 1.0, 0.1).as_dict()
        {'window': 500, 'theta': 1.0, 'lambda': 0.1}
        >>> NeuralCache(0, 1.0, 0.1)
        Traceback (most recent call last):
        quasirnn.errors.ConfigError: --cache-window must be >= 1, got 0
    """

    window: int
    theta: float
    lambd: float

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"--cache-window must be >= 1, got {self.window}")
        if not (math.isfinite(self.theta) and self.theta >= 0):
            raise ConfigError(f"--cache-theta must be a finite number >= 0, got {self.theta}")
        if not 0.0 <= self.lambd <= 1.0:
            raise ConfigError(f"--cache-lambda must be in [0, 1], got {self.lambd}")

    def as_dict(self) -> dict[str, float]:
        """``{"window", "theta", "lambda"}``, e.g. for a JSON result."""
        return {"window": self.window, "theta": self.theta, "lambda": self.lambd}


class CacheEvaluation(NamedTuple):
    """What :func:`evaluate_with_cache` measures, in nats per predicted token."""

    loss: float  #: mean NLL of the model alone
    cache_loss: float  #: mean NLL with the neural cache
    tokens: int  #: predicted tokens, N − 1


def _wide(t: Tensor) -> Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


@torch.no_grad()
def evaluate_with_cache(model: LanguageModel, ids: Tensor, cache: NeuralCache, bptt: int,
                        precision: str = "32") -> CacheEvaluation:
    """The mean NLL of a stream with and without the neural cache (see the module docstring).

    The model runs in eval mode (put back in its previous mode afterwards) on one stream, window
    by window of ``bptt`` steps, the state carried across windows. Within a window every
    position's cache term is computed at once: a (T, W + T) matrix of θ h_t·h_i, masked to each
    position's W predecessors, then softmax. The features and both distributions are float32 at
    least (float64 in a float64 model); the forward passes run in ``precision``.

    Args:
        model: the language model, on ``ids``' device. Its :meth:`~LanguageModel.features` (last
            layer's outputs, (T, 1, E)) are the cache's keys and queries; :meth:`~LanguageModel.decode`
            gives p_vocab (logits or the adaptive softmax's log-probabilities, normalised here).
        ids: LongTensor (N,), the split's word ids in order, N ≥ 2.
        cache: the window, θ and λ.
        bptt: window length of the forward passes, ≥ 1 (speed and memory only).
        precision: a resolved precision ("32", "bf16" or "fp16").

    Returns:
        :class:`CacheEvaluation`: ``loss`` is that of
        :func:`~quasirnn.experiments.language_model.evaluate` on ``ids`` as one column;
        ``cache_loss`` equals it exactly when λ = 0 or the stream has at most W + 1 predictions.
        Perplexity is ``exp(loss)``. (pointer.py prints ``exp(sum / N)``, the sum over N − 1
        predictions divided by N.)

    Raises:
        ValueError: ``ids`` not 1-D with at least 2 tokens, or ``bptt`` < 1.

    Example::

        >>> model = LanguageModel(20, 8, 8, num_layers=1, cell="lstm")
        >>> ids = torch.arange(40) % 5  # a short loop: the cache has seen every next word
        >>> result = evaluate_with_cache(model, ids, NeuralCache(window=10, theta=1.0, lambd=0.5), bptt=8)
        >>> result.tokens, result.cache_loss < result.loss
        (39, True)
    """
    if ids.dim() != 1 or ids.numel() < 2:
        raise ValueError(f"ids must be a 1-D stream of at least 2 word ids, got shape {tuple(ids.shape)}")
    window, theta = cache.window, cache.theta
    log_keep = math.log1p(-cache.lambd) if cache.lambd < 1 else -math.inf
    log_lambda = math.log(cache.lambd) if cache.lambd > 0 else -math.inf
    total, cached, count = 0.0, 0.0, 0
    keys = next_words = None  # the last `window` positions' features (K, E) and next words (K,)
    was_training = model.training
    model.eval()
    try:
        hidden = None
        for pos, inputs, targets in bptt_batches(ids.view(-1, 1), bptt):
            with autocast(precision, ids.device):
                raw, _, hidden = model.features(inputs, hidden)
                scores = model.decode(raw)
            h = _wide(raw[:, 0])  # (T, E)
            words = targets[:, 0]  # (T,)
            vocab = F.log_softmax(_wide(scores[:, 0]), dim=-1).gather(1, words[:, None]).squeeze(1)  # (T,)
            keys = h if keys is None else torch.cat([keys, h])
            next_words = words if next_words is None else torch.cat([next_words, words])
            mixed = vocab
            first = max(0, window + 1 - pos)  # the first position of this window that uses the cache
            if first < len(words):
                mixed = vocab.clone()
                mixed[first:] = _mix(vocab[first:], _cache_prob(h[first:], words[first:], keys, next_words,
                                                                pos + first, pos + len(words), window, theta),
                                     log_keep, log_lambda)
            total -= vocab.sum().item()
            cached -= mixed.sum().item()
            count += len(words)
            keys, next_words = keys[-window:], next_words[-window:]
    finally:
        model.train(was_training)
    return CacheEvaluation(total / count, cached / count, count)


def _cache_prob(queries: Tensor, targets: Tensor, keys: Tensor, next_words: Tensor, start: int, stop: int,
                window: int, theta: float) -> Tensor:
    """p_cache of each target (Q,), for the positions [start, stop) of the stream.

    ``keys`` (K, E) and ``next_words`` (K,) hold the positions [stop − K, stop); position t reads
    those in [t − window, t)."""
    positions = torch.arange(start, stop, device=keys.device)[:, None]  # (Q, 1)
    held = torch.arange(stop - keys.size(0), stop, device=keys.device)[None, :]  # (1, K)
    visible = (held < positions) & (held >= positions - window)  # (Q, K)
    logits = (theta * (queries @ keys.T)).masked_fill(~visible, -math.inf)
    attention = torch.softmax(logits, dim=-1)
    return (attention * (next_words[None, :] == targets[:, None])).sum(-1)


def _mix(log_vocab: Tensor, cache: Tensor, log_keep: float, log_lambda: float) -> Tensor:
    """log((1 − λ) p_vocab + λ p_cache), exactly ``log_vocab`` when λ = 0."""
    return torch.logaddexp(log_vocab + log_keep, torch.log(cache) + log_lambda)
