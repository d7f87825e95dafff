"""AdaptiveSoftmax: exact normalisation over the vocabulary, equality with the full softmax, tied gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quasirnn.models.softmax import AdaptiveSoftmax, check_cutoffs, default_cutoffs

V, E, N = 61, 7, 40


def _setup(tied, cutoffs, seed=0):
    torch.manual_seed(seed)
    emb = nn.Embedding(V, E)
    order = torch.randperm(V)  # word ids in a frequency order that is not the id order
    sm = AdaptiveSoftmax(E, V, cutoffs, order=order, weight=emb.weight if tied else None).double()
    with torch.no_grad():
        if tied:
            sm.bias.normal_()
            sm.cluster_bias.normal_()
    return emb.double(), sm


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("cutoffs", [[5], [10, 30], [1, 2, 60]])
@pytest.mark.parametrize("n", [N, 3], ids=["rows>=E", "rows<E"])  # the tied log_prob's two ways (weights or scores reordered)
def test_log_prob_is_normalised_over_the_vocabulary_and_matches_the_loss(tied, cutoffs, n):
    emb, sm = _setup(tied, cutoffs)
    x = torch.randn(n, E, dtype=torch.float64)
    target = torch.randint(0, V, (n,))
    logp = sm.log_prob(x)
    assert logp.shape == (n, V)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(sm(x, target), -logp.gather(1, target[:, None]).squeeze(1))


@pytest.mark.parametrize("cutoffs", [[], [5], [10, 30]])
def test_tied_log_prob_of_few_rows_equals_that_of_many(cutoffs):
    emb, sm = _setup(True, cutoffs)
    x = torch.randn(N, E, dtype=torch.float64)
    many = sm.log_prob(x)
    torch.testing.assert_close(torch.cat([sm.log_prob(x[i:i + 2]) for i in range(0, N, 2)]), many)


def test_every_word_in_the_head_equals_the_full_softmax_on_the_same_logits():
    emb, sm = _setup(True, [])
    x = torch.randn(N, E, dtype=torch.float64)
    target = torch.randint(0, V, (N,))
    logits = F.linear(x, emb.weight, sm.bias[sm.rank])  # the bias is stored in frequency order
    torch.testing.assert_close(sm(x, target), F.cross_entropy(logits, target, reduction="none"))
    torch.testing.assert_close(sm.log_prob(x), F.log_softmax(logits, -1))


def test_tied_reference_by_hand():
    """Cluster k's word: log p_head(cluster) + log softmax over the cluster's rows."""
    emb, sm = _setup(True, [10, 30])
    x = torch.randn(3, E, dtype=torch.float64)
    W, b, order = emb.weight, sm.bias, sm.order
    head = torch.cat([x @ W[order[:10]].T + b[:10], x @ sm.cluster_weight.T + sm.cluster_bias], 1).log_softmax(-1)
    tail = (x @ W[order[10:30]].T + b[10:30]).log_softmax(-1)
    word = order[17]  # rank 17: cluster 1, index 7 in it
    expected = -(head[:, 10] + tail[:, 7])
    torch.testing.assert_close(sm(x, word.repeat(3)), expected)


def test_tied_gradients_reach_the_embedding_and_gradcheck():
    emb, sm = _setup(True, [10, 30])
    assert sm.weight is emb.weight
    x = torch.randn(N, E, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, V, (N,))
    sm(x, target).sum().backward()
    grad_rows = emb.weight.grad.abs().sum(1) > 0
    assert grad_rows[sm.order[:10]].all()  # every head word gets a gradient (the head softmax scores them all)
    assert grad_rows.any() and sm.cluster_weight.grad.abs().sum() > 0
    # gradcheck against the weight and the input in float64
    w = emb.weight.detach().clone().requires_grad_()
    sm.weight = nn.Parameter(w)
    torch.autograd.gradcheck(lambda xx, ww: _with_weight(sm, ww)(xx, target), (x.detach().requires_grad_(), w))


def _with_weight(sm, weight):
    def run(x, target):
        saved = sm.weight
        try:
            del sm.weight
            sm.weight = weight
            return sm(x, target)
        finally:
            del sm.weight
            sm.weight = saved
    return run


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="strictly increasing integers in \\[1, 60\\]"):
        AdaptiveSoftmax(E, V, [10, 10])
    with pytest.raises(ValueError, match="strictly increasing"):
        check_cutoffs([0], V)
    with pytest.raises(ValueError, match="needs at least one cutoff"):
        AdaptiveSoftmax(E, V, [])
    with pytest.raises(ValueError, match=r"order must be a LongTensor of shape \(61,\)"):
        AdaptiveSoftmax(E, V, [5], order=torch.arange(V - 1))
    sm = AdaptiveSoftmax(E, V, [5])
    with pytest.raises(ValueError, match=r"expected x \(N, 7\) and target \(N,\)"):
        sm(torch.randn(3, E + 1), torch.zeros(3, dtype=torch.long))


def test_default_cutoffs_follow_the_frequencies():
    torch.manual_seed(0)
    ranks = torch.arange(1, 40_001, dtype=torch.float64)
    counts = (1e7 / ranks)[torch.randperm(40_000)]  # Zipf, shuffled: only the sorted values matter
    cutoffs = default_cutoffs(counts)
    check_cutoffs(cutoffs, 40_000)
    assert 1 <= len(cutoffs) <= 3 and cutoffs[0] >= 1000
    assert default_cutoffs(torch.rand(500)) == []  # too small a vocabulary to split
    # a more peaked distribution puts fewer words in the head
    steeper = default_cutoffs(1e7 / ranks ** 1.5)
    assert steeper and steeper[0] <= cutoffs[0]
