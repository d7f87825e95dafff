"""Sampling the next word from a language model's scores: temperature, top-k and top-p (nucleus).

The scores are a (..., V) float tensor over the vocabulary: logits, or log-probabilities (the
adaptive softmax's); a softmax of either gives the same distribution. The warpers follow the
standard definitions (as Hugging Face transformers' logits warpers apply them, in this order):

- **temperature** T > 0: scores / T, i.e. p_i ∝ p_i^(1/T): below 1 sharper, above 1 flatter;
- **top-k** (Fan et al. 2018): keep the k highest scores, and every score equal to the k-th
  (ties are kept); the others get −∞;
- **top-p**, nucleus sampling (Holtzman et al. 2020): keep the smallest set of the most probable
  words whose probabilities sum to at least p, i.e. every word whose higher-ranked words sum to
  less than p (the most probable word is always kept); p = 1 keeps all.

:func:`sample_next` applies them and draws one word (:func:`draw`); ``top_k = 1`` is greedy (the
argmax, no random draw: the generator is not used).
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from quasirnn._checks import check_int

__all__ = ["check_sampling", "draw", "sample_next", "top_k_filter", "top_p_filter"]


def check_sampling(temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None) -> None:
    """Checks the sampling settings: temperature finite and > 0, top_k an integer ≥ 1 or None, top_p
    in (0, 1] or None.

    Raises:
        ValueError: a value out of range (NaN included); the message names the argument
            (``temperature must be a finite number > 0, got 0.0``).

    Example::

        >>> check_sampling(0.7, top_k=40, top_p=0.9)
        >>> check_sampling(top_p=1.5)
        Traceback (most recent call last):
        ...
        ValueError: top_p must be in (0, 1], got 1.5
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if top_k is not None:
        check_int("top_k", top_k)
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def top_k_filter(scores: Tensor, k: int) -> Tensor:
    """``scores`` (..., V) with every score below the k-th highest set to −∞ (ties with it kept).

    Args:
        scores: float tensor (..., V).
        k: integer ≥ 1; k ≥ V keeps everything.

    Returns:
        A new tensor of the shape and dtype of ``scores``.

    Example::

        >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0, 3.0]), 2).tolist()
        [-inf, 3.0, -inf, 3.0]
        >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0]), 2).tolist()
        [-inf, 3.0, 2.0]
    """
    if k >= scores.size(-1):
        return scores.clone()
    kth = torch.topk(scores, k, dim=-1).values[..., -1:]
    return scores.masked_fill(scores < kth, -math.inf)


def top_p_filter(scores: Tensor, p: float) -> Tensor:
    """``scores`` (..., V) with −∞ outside the nucleus: the most probable words whose
    probabilities (softmax of ``scores``) sum to at least ``p``.

    A word is kept when the words ranked above it sum to less than ``p``; the most probable word
    is always kept. Of words with equal scores, the one of the lower id ranks first. The ranking
    is read from the sorted values alone (``numpy.sort`` on the CPU: 50 µs for 10,000 scores,
    where ``torch.sort``, which also sorts the indices, takes 0.8 ms).

    Args:
        scores: float tensor (..., V), logits or log-probabilities.
        p: in (0, 1]; 1 keeps every word of non-zero probability.

    Returns:
        A new tensor of the shape and dtype of ``scores``.

    Example::

        >>> probs = torch.tensor([0.1, 0.5, 0.15, 0.25])
        >>> top_p_filter(probs.log(), 0.7).isfinite().tolist()  # 0.5 + 0.25 >= 0.7
        [False, True, False, True]
        >>> top_p_filter(probs.log(), 0.8).isfinite().tolist()  # 0.5 + 0.25 < 0.8: one more
        [False, True, True, True]
    """
    if scores.dim() != 1:
        return torch.stack([top_p_filter(row, p) for row in scores.reshape(-1, scores.size(-1))]).view_as(scores)
    wide = scores.float()
    top = _descending(wide)  # equal scores have equal values, whatever their order
    probs = (top - torch.logsumexp(wide, dim=-1)).exp()
    keep = int(((probs.cumsum(-1) - probs) < p).sum().clamp_min(1))  # the mass ranked above each is < p
    last = top[keep - 1]  # the lowest score kept; of those equal to it, the first by id up to ``keep`` in all
    ties, above = wide == last, int((wide > last).sum())
    drop = wide < last
    if above + int(ties.sum()) > keep:  # more words equal to the last kept than places left: the later ids go
        drop |= ties & (ties.cumsum(-1) > keep - above)
    return scores.masked_fill(drop, -math.inf)


def _descending(values: Tensor) -> Tensor:
    """The values of a 1-D tensor in decreasing order."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.sort(values.numpy())[::-1].copy())
    return torch.sort(values, descending=True).values


def sample_next(scores: Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, generator: Optional[torch.Generator] = None) -> Tensor:
    """One word id per row of ``scores``, drawn from softmax(scores / temperature) after top-k then top-p.

    Args:
        scores: float tensor (..., V): logits or log-probabilities.
        temperature: T > 0.
        top_k: None (no limit) or k ≥ 1; 1 is greedy: the argmax (the lowest id among equal
            maxima), with no random draw.
        top_p: None (no limit) or p in (0, 1].
        generator: the random generator of the draw (on the device of ``scores``); None = torch's default.

    Returns:
        LongTensor (...): the chosen ids.

    Raises:
        ValueError: settings out of range (:func:`check_sampling`).

    Example::

        >>> scores = torch.tensor([0.0, 2.0, 1.0])
        >>> int(sample_next(scores, top_k=1))
        1
        >>> g = torch.Generator().manual_seed(0)
        >>> int(sample_next(scores, temperature=0.5, top_p=0.9, generator=g)) in (1, 2)
        True
    """
    check_sampling(temperature, top_k, top_p)
    if top_k == 1:
        return scores.argmax(dim=-1)
    scores = scores.float() / temperature
    if top_k is not None:
        scores = top_k_filter(scores, top_k)
    if top_p is not None and top_p < 1:
        scores = top_p_filter(scores, top_p)
    return draw(torch.softmax(scores, dim=-1), generator)


def draw(probs: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """One index per row of ``probs`` (..., V), index i with probability probs[..., i] / their sum.

    Inverse transform sampling: one uniform number u per row, the first index whose cumulative
    sum (float64) exceeds u times the total, so an index of probability 0 is never drawn. At
    V = 10,000 on a CPU this costs a few tens of µs, where ``torch.multinomial`` takes about
    half a millisecond (it prepares a general draw of many samples).

    Args:
        probs: float tensor (..., V) of non-negative weights with a positive sum per row.
        generator: the random generator (on the device of ``probs``); None = torch's default.

    Returns:
        LongTensor (...).

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> sorted({int(draw(torch.tensor([0.0, 0.3, 0.0, 0.7]), g)) for _ in range(50)})
        [1, 3]
    """
    cdf = probs.double().cumsum(-1)
    total = cdf[..., -1:].contiguous()
    u = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=probs.device)
    index = torch.searchsorted(cdf, u * total, right=True)
    # u * total rounds up to the total once in about 2^53 draws: then the last index of non-zero weight
    index = torch.where(index >= probs.size(-1), torch.searchsorted(cdf, total), index)
    return index.squeeze(-1)
