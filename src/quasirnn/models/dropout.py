"""Dropouts of the AWD-LSTM / AWD-QRNN language models (Merity et al., 2017, arXiv 1708.02182).

- :class:`LockedDropout` — variational dropout (Gal & Ghahramani, 2016; AWD-LSTM §4.2): one
  mask per sequence, shared by every time step, so the same units are dropped all along.
- :func:`embedded_dropout` — embedding dropout (AWD-LSTM §4.3): whole word types are dropped
  from the embedding matrix, so every occurrence of a dropped word in the batch is zero.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LockedDropout", "embedded_dropout"]


class LockedDropout(nn.Module):
    """Variational ("locked") dropout: one mask per sequence, shared across time.

    In training mode each of the B sequences gets a mask of N units, drawn once with keep
    probability ``1 − p`` and scaled by ``1 / (1 − p)``, and the same mask multiplies every
    time step (AWD-LSTM §4.2). In eval mode, or with ``p = 0``, it is the identity.

    Args:
        p: drop probability, 0 ≤ p < 1.

    Shape:
        - Input: (T, B, N), floating point.
        - Output: (T, B, N), same dtype and device.

    Example::

        >>> import torch
        >>> drop = LockedDropout(0.5).train()
        >>> y = drop(torch.ones(4, 2, 3))
        >>> y.shape, bool((y[0] == y[3]).all())  # one mask for every step
        (torch.Size([4, 2, 3]), True)
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Applies the shared mask (training) or returns ``x`` (eval, p = 0); x: (T, B, N)."""
        if not self.training or self.p == 0.0:
            return x
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def embedded_dropout(embed: nn.Embedding, words: Tensor, dropout: float = 0.1, training: bool = True) -> Tensor:
    """Embedding lookup with word-type dropout (AWD-LSTM §4.3).

    Each row (word type) of the V × E embedding matrix is kept with probability
    ``1 − dropout`` and scaled by ``1 / (1 − dropout)``; dropped rows are zero, so a dropped
    word is zero at all its positions in the batch. Gradients flow to the kept rows.

    Args:
        embed: the embedding layer, weight (V, E).
        words: LongTensor of ids of any shape, e.g. (T, B).
        dropout: drop probability of a word type, 0 ≤ dropout < 1.
        training: apply the dropout (pass ``module.training``); otherwise a plain lookup.

    Returns:
        Embeddings of shape ``words.shape + (E,)``, e.g. (T, B, E), dtype of the weight.

    Example::

        >>> import torch
        >>> embedded_dropout(nn.Embedding(10, 4), torch.randint(0, 10, (5, 2)), 0.1).shape
        torch.Size([5, 2, 4])
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
    weight = embed.weight
    if training and dropout > 0.0:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1.0 - dropout) / (1.0 - dropout)
        weight = weight * mask
    return F.embedding(
        words,
        weight,
        embed.padding_idx,
        embed.max_norm,
        embed.norm_type,
        embed.scale_grad_by_freq,
        embed.sparse,
    )
