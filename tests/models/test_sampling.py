"""Sampling warpers and the draw: the exact sets top-k and top-p keep, greedy top-k 1, temperature, the
draw's distribution, and the settings' checks."""

from __future__ import annotations

import math

import pytest
import torch

from quasirnn.models.sampling import check_sampling, draw, sample_next, top_k_filter, top_p_filter


def kept(scores: torch.Tensor) -> set[int]:
    return set(torch.nonzero(scores.isfinite()).flatten().tolist())


@pytest.mark.parametrize("scores, k, expected", [
    ([1.0, 5.0, 3.0, 4.0, 2.0], 1, {1}),
    ([1.0, 5.0, 3.0, 4.0, 2.0], 2, {1, 3}),
    ([1.0, 5.0, 3.0, 4.0, 2.0], 4, {1, 2, 3, 4}),
    ([1.0, 5.0, 3.0, 3.0, 2.0], 2, {1, 2, 3}),  # a tie with the k-th is kept
    ([1.0, 5.0, 3.0], 3, {0, 1, 2}),
    ([1.0, 5.0, 3.0], 10, {0, 1, 2}),  # k >= V keeps all
])
def test_top_k_keeps_exactly_the_k_highest(scores, k, expected):
    scores = torch.tensor(scores)
    out = top_k_filter(scores, k)
    assert kept(out) == expected
    assert torch.equal(out[out.isfinite()], scores[sorted(expected)])  # the kept scores are unchanged
    assert torch.all(out[~out.isfinite()] == -math.inf)


@pytest.mark.parametrize("p, expected", [
    (0.01, {1}),       # the most probable word is always kept
    (0.45, {1}),       # 0.5 alone reaches it
    (0.6, {1, 3}),     # 0.5 + 0.25
    (0.74, {1, 3}),
    (0.8, {1, 3, 2}),  # 0.5 + 0.25 + 0.2 = 0.95
    (0.97, {0, 1, 2, 3}),
    (1.0, {0, 1, 2, 3}),
])
def test_top_p_keeps_the_smallest_set_reaching_p(p, expected):
    probs = torch.tensor([0.05, 0.5, 0.2, 0.25])
    for scores in (probs.log(), probs.log() + 3.0):  # log-probabilities or logits: the same softmax
        assert kept(top_p_filter(scores, p)) == expected


def test_top_p_with_zero_probabilities_and_ties():
    scores = torch.tensor([-math.inf, 1.0, 1.0, 1.0, 1.0])  # four words of 0.25
    assert kept(top_p_filter(scores, 0.6)) == {1, 2, 3}  # 0.5 < 0.6 <= 0.75; ties ranked by id
    assert kept(top_p_filter(scores, 1.0)) == {1, 2, 3, 4}


def _sorted_reference(scores: torch.Tensor, p: float) -> torch.Tensor:
    """top-p by a full stable sort (the definition), for comparison."""
    values, order = torch.sort(scores, descending=True, stable=True)
    probs = torch.softmax(values, -1)
    drop = (probs.cumsum(-1) - probs) >= p
    drop[..., 0] = False
    return scores.masked_fill(drop.scatter(-1, order, drop), -math.inf)


def test_top_p_equals_the_sorted_definition_on_random_scores():
    torch.manual_seed(0)
    for i in range(200):
        scores = torch.randn(int(torch.randint(1, 500, ()))) * float(torch.rand(()) * 5)
        if i % 3 == 0:
            scores = scores.round()  # many ties
        p = float(torch.rand(()))
        assert kept(top_p_filter(scores, p)) == kept(_sorted_reference(scores, p)), (i, p)
    batch = torch.randn(3, 50)
    assert torch.equal(top_p_filter(batch, 0.7), torch.stack([_sorted_reference(r, 0.7) for r in batch]))


def test_top_k_1_is_the_argmax_and_uses_no_randomness():
    scores = torch.tensor([[0.1, 2.0, 2.0, -1.0], [3.0, 0.0, 1.0, 3.5]])
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    assert sample_next(scores, top_k=1, generator=g).tolist() == [1, 3]  # the lowest id of equal maxima
    assert sample_next(scores, temperature=7.0, top_k=1, top_p=0.1, generator=g).tolist() == [1, 3]
    assert torch.equal(g.get_state(), state)


def test_draw_follows_the_probabilities_and_never_draws_zero():
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3, 0.0])
    n = 20_000
    counts = torch.bincount(draw(probs.expand(n, 5), g), minlength=5) / n
    assert counts[1] == 0 and counts[4] == 0
    assert torch.allclose(counts, probs, atol=0.015)
    assert draw(torch.tensor([[0.0, 2.0], [5.0, 0.0]]), g).tolist() == [1, 0]  # unnormalised rows


def test_temperature_sharpens_and_flattens():
    g = torch.Generator().manual_seed(0)
    scores = torch.tensor([0.0, 1.0, 2.0]).expand(20_000, 3)
    for t in (0.5, 2.0):
        freq = torch.bincount(sample_next(scores, temperature=t, generator=g), minlength=3) / 20_000
        assert torch.allclose(freq, torch.softmax(scores[0] / t, -1), atol=0.015)
    assert set(sample_next(scores[:100], temperature=1e-3, generator=g).tolist()) == {2}


def test_same_generator_seed_same_draws():
    scores = torch.randn(50, 1000)
    a = sample_next(scores, top_p=0.9, generator=torch.Generator().manual_seed(3))
    b = sample_next(scores, top_p=0.9, generator=torch.Generator().manual_seed(3))
    c = sample_next(scores, top_p=0.9, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0.0}, "temperature must be a finite number > 0, got 0.0"),
    ({"temperature": -1}, "temperature must be a finite number > 0, got -1"),
    ({"temperature": math.nan}, "temperature must be a finite number > 0, got nan"),
    ({"temperature": math.inf}, "temperature must be a finite number > 0, got inf"),
    ({"top_k": 0}, "top_k must be an integer >= 1, got 0"),
    ({"top_k": 2.0}, "top_k must be an integer >= 1, got 2.0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
    ({"top_p": 1.01}, r"top_p must be in \(0, 1\], got 1.01"),
])
def test_bad_settings_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_sampling(**kwargs)
    with pytest.raises(ValueError, match=f"^{message}$"):
        sample_next(torch.zeros(4), **kwargs)
