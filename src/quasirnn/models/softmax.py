"""Adaptive (split) softmax over a large vocabulary (Grave et al. 2017; AWD-QRNN's split softmax).

The words, ranked by decreasing training frequency, are cut at ``cutoffs`` c_1 < … < c_K into
a head [0, c_1) and K tail clusters [c_k, c_{k+1}) (c_{K+1} = V). The head softmax scores the head
words and one extra class per tail cluster; a word w of cluster k has

    log p(w | h) = log p_head(cluster k | h) + log p_k(w | h),

so the distribution is normalised over the whole vocabulary, and its negative log-likelihood is
the exact cross-entropy of that distribution (no sampling, no approximation of the partition
function): training and evaluation perplexities are exact. Training costs a head of c_1 + K
columns for every token, and a tail's columns only for the tokens whose target lies in it.

Two forms (see :class:`AdaptiveSoftmax`):

- **tied** (``weight`` given): every word's output vector is its row of the embedding matrix
  (V, E), full width, as in Merity et al. 2018 ("An Analysis of Neural Language Modeling at
  Multiple Scales", §3.1, salesforce/awd-lstm-lm ``splitcross.py``); the module owns only the
  (V,) word biases and the K cluster vectors;
- **untied** (no ``weight``): :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`, whose tail clusters
  project to E / 4^k features first (``div_value`` = 4), with its own (V, ·) weights.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AdaptiveSoftmax", "default_cutoffs", "check_cutoffs"]


def check_cutoffs(cutoffs: Sequence[int], vocab_size: int) -> list[int]:
    """``cutoffs`` as a list, checked: strictly increasing integers in [1, V − 1].

    Raises:
        ValueError: a cutoff out of range, or not strictly increasing.
    """
    values = [int(c) for c in cutoffs]
    if any(c < 1 or c >= vocab_size for c in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"cutoffs must be strictly increasing integers in [1, {vocab_size - 1}] "
                         f"(the vocabulary has {vocab_size} words), got {values}")
    return values


def default_cutoffs(counts: Tensor, *, max_clusters: int = 3, cluster_cost: float = 64.0,
                    min_head: int = 1000) -> list[int]:
    """Cutoffs that minimise the expected softmax columns per training token, from word frequencies.

    A head of c_1 words and K clusters costs c_1 + K columns for every token, and cluster
    [a, b) costs (b − a) columns for the fraction of tokens whose word ranks ≥ a (Grave et al.
    2017, §4's cost model with a linear cost per column). Each cluster also costs
    ``cluster_cost`` columns per token (its kernel launches, its gather of the tied rows), so
    small clusters are not split off. Boundaries are searched on a grid of ratio √2 from
    ``min_head``; the best split is found by dynamic programming over that grid.

    Args:
        counts: (V,) training counts of each word, any order (only the sorted values matter).
        max_clusters: at most this many tail clusters.

    Returns:
        The cutoffs (a list of K ≤ ``max_clusters`` increasing ints; empty when no split beats
        the full softmax, e.g. a vocabulary smaller than ``min_head``).

    Example::

        >>> counts = torch.tensor([1e6 / r for r in range(1, 33_279)])
        >>> default_cutoffs(counts)
        [1000, 5657, 16000]
    """
    freq = torch.sort(counts.double().flatten(), descending=True).values
    vocab = freq.numel()
    total = float(freq.sum())
    if vocab <= min_head or total <= 0:
        return []
    # tail[i] = fraction of tokens whose word ranks >= i
    tail = torch.cat([torch.ones(1, dtype=torch.float64), 1.0 - freq.cumsum(0) / total]).clamp_min(0.0).tolist()
    grid = sorted({int(round(min_head * math.sqrt(2.0) ** i)) for i in range(64)
                   if min_head * math.sqrt(2.0) ** i < vocab})
    points = grid + [vocab]
    # best[k][j]: cheapest cost of covering [points[j], V) with exactly k clusters starting at points[j]
    inf = math.inf
    n = len(points)
    best = [[inf] * n for _ in range(max_clusters + 1)]
    nxt = [[None] * n for _ in range(max_clusters + 1)]
    best[0][n - 1] = 0.0
    for k in range(1, max_clusters + 1):
        for j in range(n - 1):
            for m in range(j + 1, n):
                if best[k - 1][m] == inf:
                    continue
                cost = tail[points[j]] * (points[m] - points[j]) + 1.0 + cluster_cost + best[k - 1][m]
                if cost < best[k][j]:
                    best[k][j], nxt[k][j] = cost, m
    choice, cheapest = (0, n - 1), float(vocab)  # the full softmax
    for k in range(1, max_clusters + 1):
        for j in range(n - 1):
            cost = points[j] + best[k][j]
            if cost < cheapest:
                choice, cheapest = (k, j), cost
    k, j = choice
    cutoffs = []
    while k > 0:
        cutoffs.append(points[j])
        j = nxt[k][j]
        k -= 1
    return cutoffs


def _wide(t: Tensor) -> Tensor:
    """``t`` in float32 when it is half or bfloat16 (log-softmax and losses in at least float32)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class AdaptiveSoftmax(nn.Module):
    """Adaptive softmax over V words, tied to an embedding matrix or not (see the module docstring).

    Args:
        in_features: E, the size of the hidden vectors scored.
        vocab_size: V.
        cutoffs: K ≥ 0 increasing frequency ranks in [1, V − 1] (K = 0: one head of all V words,
            the full softmax; the untied form needs K ≥ 1).
        order: LongTensor (V,), the word ids by decreasing frequency (a permutation); None =
            ids are already in frequency order. Stored as a buffer.
        weight: the (V, E) embedding Parameter to tie to (rows in word-id order); None = untied.
        div_value: the untied form's tail projection ratio (torch's ``div_value``).

    Attributes:
        cluster_scorers: None, or (set by :func:`quasirnn.quantize`) a ``ModuleList`` of int8 copies
            of the tied clusters' scores (:meth:`cluster_linears`) that then score every cluster,
            in :meth:`log_prob` and the NLL alike; the float embedding stays for the input side.

    Shape:
        - forward: x (N, E) float, target (N,) long word ids → NLL (N,) at least float32 (nats).
        - :meth:`log_prob`: x (N, E) → (N, V) log-probabilities in word-id order, summing
          (after exp) to 1 over V.

    Raises:
        ValueError: bad cutoffs, ``order`` not of shape (V,), ``weight`` not (V, E), or an
            untied module without cutoffs.

    Example::

        >>> emb = nn.Embedding(50, 8)
        >>> sm = AdaptiveSoftmax(8, 50, [10, 30], weight=emb.weight)
        >>> sm(torch.randn(5, 8), torch.randint(0, 50, (5,))).shape
        torch.Size([5])
        >>> float(sm.log_prob(torch.randn(2, 8)).exp().sum(-1)[0])  # doctest: +ELLIPSIS
        1.0...
    """

    def __init__(self, in_features: int, vocab_size: int, cutoffs: Sequence[int], order: Optional[Tensor] = None,
                 weight: Optional[nn.Parameter] = None, div_value: float = 4.0) -> None:
        super().__init__()
        self.in_features, self.vocab_size = in_features, vocab_size
        self.cutoffs = check_cutoffs(cutoffs, vocab_size)
        self.bounds = [0, *self.cutoffs, vocab_size]
        if order is None:
            order = torch.arange(vocab_size)
        order = torch.as_tensor(order, dtype=torch.long)
        if order.shape != (vocab_size,):
            raise ValueError(f"order must be a LongTensor of shape ({vocab_size},), got shape {tuple(order.shape)}")
        rank = torch.empty_like(order)
        rank[order] = torch.arange(vocab_size)
        self.register_buffer("order", order)
        self.register_buffer("rank", rank)
        self.register_buffer("boundaries", torch.tensor(self.cutoffs, dtype=torch.long), persistent=False)
        self.tied = weight is not None
        clusters = len(self.cutoffs)
        if self.tied:
            if weight.shape != (vocab_size, in_features):
                raise ValueError(f"weight must be ({vocab_size}, {in_features}), got {tuple(weight.shape)}")
            self.weight = weight
            self.bias = nn.Parameter(torch.zeros(vocab_size))
            self.cluster_weight = nn.Parameter(torch.empty(clusters, in_features))
            self.cluster_bias = nn.Parameter(torch.zeros(clusters))
            nn.init.uniform_(self.cluster_weight, -0.1, 0.1)
            # None, or quasirnn.quantize's int8 copies of cluster_linears(), which then score the clusters
            self.register_module("cluster_scorers", None)
        else:
            if not clusters:
                raise ValueError("the untied adaptive softmax (torch's AdaptiveLogSoftmaxWithLoss) needs at least one cutoff")
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(in_features, vocab_size, self.cutoffs, div_value=div_value,
                                                          head_bias=True)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.vocab_size}, cutoffs={self.cutoffs}, tied={self.tied}"

    def cluster_linears(self) -> list[nn.Linear]:
        """Float ``nn.Linear`` copies (E → n_k) of the tied scores of each cluster, in frequency-rank
        order: the head's c_1 words then its K cluster classes, then each tail cluster's words; each
        weight (n_k, E) holds the embedding's rows (the cluster vectors) and each bias the word (the
        cluster) biases. :func:`quasirnn.quantize` quantises them into :attr:`cluster_scorers`.

        Raises:
            ValueError: the untied form (torch's module holds its own ``nn.Linear`` layers).

        Example::

            >>> sm = AdaptiveSoftmax(8, 50, [10, 30], weight=nn.Embedding(50, 8).weight)
            >>> [tuple(linear.weight.shape) for linear in sm.cluster_linears()]
            [(12, 8), (20, 8), (20, 8)]
        """
        if not self.tied:
            raise ValueError("cluster_linears is for the tied adaptive softmax; the untied one holds its own nn.Linear")
        linears = []
        for k in range(len(self.bounds) - 1):
            w, b = self._cluster_rows(k)
            linear = nn.Linear(self.in_features, w.size(0), device=w.device, dtype=w.dtype)
            with torch.no_grad():
                linear.weight.copy_(w)
                linear.bias.copy_(b)
            linears.append(linear)
        return linears

    def _cluster_rows(self, k: int) -> tuple[Tensor, Tensor]:
        """The (n_k, E) tied vectors and (n_k,) biases of frequency ranks [bounds[k], bounds[k+1]),
        the head's (k = 0) followed by the K cluster vectors and biases."""
        lo, hi = self.bounds[k], self.bounds[k + 1]
        w, b = self.weight.index_select(0, self.order[lo:hi]), self.bias[lo:hi]
        if k == 0 and self.cutoffs:
            w, b = torch.cat([w, self.cluster_weight]), torch.cat([b, self.cluster_bias])
        return w, b

    def _logits(self, x: Tensor, k: int) -> Tensor:
        """Scores (N, n_k) of cluster k (k = 0: the head's words and cluster classes), at least float32."""
        if self.cluster_scorers is not None:
            return _wide(self.cluster_scorers[k](x))
        return _wide(F.linear(x, *self._cluster_rows(k)))

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        """Negative log-likelihood (N,) of each ``target`` word id given its hidden vector x (N, E)."""
        if x.dim() != 2 or x.size(1) != self.in_features or target.shape != x.shape[:1]:
            raise ValueError(f"expected x (N, {self.in_features}) and target (N,), got {tuple(x.shape)} "
                             f"and {tuple(target.shape)}")
        rank = self.rank[target]
        if not self.tied:
            return -_wide(self.adaptive(x, rank).output)
        cluster = torch.bucketize(rank, self.boundaries, right=True)  # 0 = head, k = tail cluster k
        head_index = torch.where(cluster == 0, rank, self.bounds[1] + cluster - 1)
        nll = -F.log_softmax(self._logits(x, 0), dim=-1).gather(1, head_index.unsqueeze(1)).squeeze(1)
        for k in range(1, len(self.bounds) - 1):
            rows = (cluster == k).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            logp = F.log_softmax(self._logits(x.index_select(0, rows), k), dim=-1)
            picked = logp.gather(1, (rank.index_select(0, rows) - self.bounds[k]).unsqueeze(1)).squeeze(1)
            nll = nll.index_add(0, rows, -picked)
        return nll

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-probabilities (N, V) of every word (columns in word-id order), float32."""
        by_rank = _wide(self.adaptive.log_prob(x)) if not self.tied else self._tied_log_prob(x)
        return by_rank.index_select(1, self.rank)

    def _tied_log_prob(self, x: Tensor) -> Tensor:
        """Tied :meth:`log_prob` (N, V) in frequency-rank order. Without :attr:`cluster_scorers`
        every word's score comes from one product with the embedding: for N < E (generation) in
        word-id order, then reordered (N·V numbers moved), else with the embedding's rows gathered
        in rank order (V·E moved); with them, from each cluster's int8 product."""
        c1, clusters = self.bounds[1], len(self.bounds) - 1
        if self.cluster_scorers is not None:
            logits = [self._logits(x, k) for k in range(clusters)]
        else:
            if x.size(0) < self.in_features:
                scores = F.linear(x, self.weight, self.bias.index_select(0, self.rank)).index_select(1, self.order)
            else:
                scores = F.linear(x, self.weight.index_select(0, self.order), self.bias)
            scores = _wide(scores)
            classes = _wide(F.linear(x, self.cluster_weight, self.cluster_bias))
            logits = [torch.cat([scores[:, :c1], classes], dim=1)]
            logits += [scores[:, self.bounds[k]:self.bounds[k + 1]] for k in range(1, clusters)]
        head = F.log_softmax(logits[0], dim=-1)
        parts = [head[:, :c1]]
        for k in range(1, clusters):
            parts.append(head[:, c1 + k - 1 : c1 + k] + F.log_softmax(logits[k], dim=-1))
        return torch.cat(parts, dim=1)
