"""Dropouts of the AWD-LSTM / AWD-QRNN language models (Merity et al., 2017, arXiv 1708.02182).

- :class:`LockedDropout` — variational dropout (Gal & Ghahramani, 2016; AWD-LSTM §4.2): one
  mask per sequence, shared by every time step, so the same units are dropped all along.
- :func:`embedded_dropout` — embedding dropout (AWD-LSTM §4.3): whole word types are dropped
  from the embedding matrix, so every occurrence of a dropped word in the batch is zero.
- :func:`weight_drop` — weight drop (AWD-LSTM §2, DropConnect of Wan et al. 2013 on a layer's
  weight matrix): a module called with entries of some of its weights dropped, one mask per call.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["LockedDropout", "embedded_dropout", "weight_drop"]


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


def weight_drop(module: nn.Module, names: Sequence[str], p: float, *args: Any, training: bool = True) -> Any:
    """``module(*args)`` with DropConnect on the weights ``names`` (AWD-LSTM §2 "weight drop";
    awd-lstm-lm's ``WeightDrop``).

    In training mode with ``p > 0``, every entry of each named weight is zeroed with probability
    ``p`` and the kept ones scaled by ``1 / (1 − p)``, one mask drawn per call (so per BPTT window:
    every time step of the call sees the same dropped weights), and ``module`` runs with them in
    place of its parameters (:func:`torch.func.functional_call`); gradients flow to the raw
    weights through the mask. Otherwise it is ``module(*args)``. The module keeps its
    parameters and their state-dict keys; a layer that reads a weight straight from its module
    (the QRNN and SRU layers' fast path reads ``linear._parameters["weight"]``) reads the dropped one.

    Args:
        module: the layer, e.g. a QRNN stack or an ``nn.LSTM``.
        names: dotted names of parameters of ``module`` (``module.get_parameter(name)``), e.g.
            ``("layers.0.linear.weight",)`` or ``("weight_hh_l0",)``.
        p: drop probability of a weight entry, 0 ≤ p < 1.
        *args: what ``module`` is called with.
        training: apply the drop (pass ``module.training``); otherwise a plain call.

    Returns:
        What ``module(*args)`` returns.

    Raises:
        ValueError: ``p`` outside [0, 1). AttributeError: a name that is not a parameter of ``module``.

    Example::

        >>> import torch
        >>> lstm = nn.LSTM(3, 4)
        >>> out, _ = weight_drop(lstm, ["weight_hh_l0"], 0.5, torch.randn(5, 2, 3))
        >>> out.shape, sorted(lstm.state_dict()) == sorted(nn.LSTM(3, 4).state_dict())
        (torch.Size([5, 2, 4]), True)
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"weight drop probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return module(*args)
    dropped = {name: F.dropout(module.get_parameter(name), p, training=True) for name in names}
    return functional_call(module, dropped, args)
