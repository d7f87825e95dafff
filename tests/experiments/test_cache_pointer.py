"""The neural cache at evaluation (quasirnn.experiments.language_model.cache_pointer; Grave et al. 2017,
awd-lstm-lm's pointer.py) against a plain loop of pointer.py's arithmetic, the plain evaluation, and
the settings of each preset."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from quasirnn.data import batchify
from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model import (CACHE_DEFAULTS, PRESETS, NeuralCache, cache_defaults, evaluate,
                                                 evaluate_with_cache)
from quasirnn.models import LanguageModel

V, E, H = 30, 8, 12
CELLS = ("lstm", "qrnn", "sru")


def make(cell="lstm", vocab=V, softmax="full", dtype=torch.float32):
    torch.manual_seed(0)
    cutoffs = [10, 20] if softmax == "adaptive" else ()
    model = LanguageModel(vocab, E, H, num_layers=2, cell=cell, softmax=softmax, cutoffs=cutoffs,
                          word_order=torch.randperm(vocab), dropout=0.3, dropouth=0.2, dropouti=0.3, dropoute=0.1)
    return model.to(dtype)


def pointer_reference(model, ids, window, theta, lambd):
    """pointer.py's arithmetic word by word, with the whole stream in one BPTT window (where its
    result does not depend on --bptt): mean NLL over the N − 1 predictions."""
    model.eval()
    with torch.no_grad():
        raw, _, _ = model.features(ids[:-1, None])
        p_vocab = torch.softmax(model.decode(raw)[:, 0], dim=-1)  # softmax of logits or of log-probabilities
    rnn_out, targets = raw[:, 0], ids[1:]
    next_word_history = F.one_hot(targets, p_vocab.size(1)).to(p_vocab.dtype)
    total = 0.0
    for idx in range(len(targets)):
        p = p_vocab[idx]
        if idx > window:
            valid_next_word = next_word_history[idx - window:idx]
            valid_pointer_history = rnn_out[idx - window:idx]
            ptr_attn = torch.softmax(theta * torch.mv(valid_pointer_history, rnn_out[idx]), dim=0)
            ptr_dist = (ptr_attn[:, None] * valid_next_word).sum(0)
            p = lambd * ptr_dist + (1 - lambd) * p
        total += -math.log(p[targets[idx]].item())
    return total / len(targets)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_a_plain_loop_of_pointer_py_gives_the_same_loss_in_float64(cell, softmax):
    model = make(cell, softmax=softmax, dtype=torch.float64)
    ids = torch.randint(0, V, (48,), generator=torch.Generator().manual_seed(1))
    cache = NeuralCache(window=7, theta=0.8, lambd=0.3)
    expected = pointer_reference(model, ids, cache.window, cache.theta, cache.lambd)
    plain = pointer_reference(model, ids, cache.window, cache.theta, 0.0)
    for bptt in (1, 5, 100):  # windows crossing the cache's, and one window for all
        result = evaluate_with_cache(model, ids, cache, bptt=bptt)
        assert result.tokens == 47
        assert result.cache_loss == pytest.approx(expected, rel=1e-9)
        assert result.loss == pytest.approx(plain, rel=1e-9)
    assert expected != pytest.approx(plain, rel=1e-3)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_lambda_zero_is_exactly_the_plain_loss_which_is_evaluates(cell, softmax):
    model = make(cell, softmax=softmax).train()
    ids = torch.randint(0, V, (120,), generator=torch.Generator().manual_seed(2))
    result = evaluate_with_cache(model, ids, NeuralCache(window=10, theta=1.0, lambd=0.0), bptt=9)
    assert model.training  # mode restored
    assert result.cache_loss == result.loss
    loss, count = evaluate(model, batchify(ids, 1), bptt=9)
    assert result.tokens == count == 119
    assert result.loss == pytest.approx(loss, rel=1e-6)


def test_a_window_longer_than_the_split_leaves_the_model_alone():
    model = make()
    ids = torch.randint(0, V, (40,), generator=torch.Generator().manual_seed(3))
    for window in (38, 39, 1000):  # 39 predictions: position t uses the cache only from t > window
        result = evaluate_with_cache(model, ids, NeuralCache(window=window, theta=1.0, lambd=0.5), bptt=8)
        assert result.cache_loss == result.loss
    assert evaluate_with_cache(model, ids, NeuralCache(37, 1.0, 0.5), bptt=8).cache_loss != result.loss


def test_a_word_never_seen_in_the_window_costs_log_one_minus_lambda():
    """All words distinct: p_cache = 0, so each of the N − 1 − (W + 1) cached predictions adds −log(1 − λ)."""
    model = make(vocab=200)
    ids = torch.randperm(200)[:150]
    window, lambd = 20, 0.25
    result = evaluate_with_cache(model, ids, NeuralCache(window, 2.0, lambd), bptt=16)
    extra = (result.tokens - (window + 1)) * -math.log(1 - lambd)
    assert result.cache_loss * result.tokens == pytest.approx(result.loss * result.tokens + extra, rel=1e-6)


def test_the_cache_lowers_perplexity_where_rare_words_recur():
    """Documents that each repeat a few words of a large vocabulary: the cache has seen the next word."""
    generator = torch.Generator().manual_seed(4)
    vocab = 500
    documents = [torch.randperm(vocab, generator=generator)[:4] for _ in range(8)]
    ids = torch.cat([doc[torch.randint(0, 4, (40,), generator=generator)] for doc in documents])
    # 320 words: PTB's window of 500 would leave them all to the model, so a window of 40
    result = evaluate_with_cache(make(vocab=vocab), ids, NeuralCache(window=40, theta=1.0, lambd=0.5), bptt=35)
    assert result.loss == pytest.approx(math.log(vocab), rel=0.05)  # an untrained model: about uniform
    assert math.exp(result.cache_loss) < math.exp(result.loss) / 5


@pytest.mark.parametrize("options, message", [
    ((0, 1.0, 0.1), "--cache-window must be >= 1, got 0"),
    ((-3, 1.0, 0.1), "--cache-window must be >= 1, got -3"),
    ((2.5, 1.0, 0.1), "--cache-window must be >= 1, got 2.5"),
    ((10, -0.5, 0.1), "--cache-theta must be a finite number >= 0, got -0.5"),
    ((10, math.inf, 0.1), "--cache-theta must be a finite number >= 0, got inf"),
    ((10, math.nan, 0.1), "--cache-theta must be a finite number >= 0, got nan"),
    ((10, 1.0, -0.1), r"--cache-lambda must be in \[0, 1\], got -0.1"),
    ((10, 1.0, 1.5), r"--cache-lambda must be in \[0, 1\], got 1.5"),
    ((10, 1.0, math.nan), r"--cache-lambda must be in \[0, 1\], got nan"),
])
def test_bad_settings_are_one_line_errors_naming_the_option(options, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        NeuralCache(*options)


def test_the_edges_of_the_ranges_are_valid():
    """Window 1, θ = 0, λ = 1: the cache alone, all its mass on the current input word."""
    model = make()
    cache = NeuralCache(window=1, theta=0.0, lambd=1.0)
    same = torch.full((30,), 3)
    result = evaluate_with_cache(model, same, cache, bptt=4)
    first_two = evaluate_with_cache(model, same[:3], cache, bptt=4)  # predictions 0 and 1: the model's alone
    assert result.cache_loss * 29 == pytest.approx(first_two.cache_loss * 2, rel=1e-6)
    assert math.isinf(evaluate_with_cache(model, torch.arange(30), cache, bptt=4).cache_loss)
    with pytest.raises(ValueError, match="1-D stream of at least 2"):
        evaluate_with_cache(model, same[:1], cache, bptt=4)


def test_cache_defaults_are_the_awd_lstm_lm_readme_values():
    assert set(CACHE_DEFAULTS) == set(PRESETS)
    assert cache_defaults("awd-qrnn-ptb") == NeuralCache(window=500, theta=1.0, lambd=0.1)
    assert cache_defaults("awd-qrnn-wt2") == NeuralCache(window=3785, theta=0.662, lambd=0.1279)
    assert cache_defaults("awd-qrnn-wt103") == cache_defaults("awd-qrnn-wt2")  # no README command; WT2's
    assert cache_defaults(None) == cache_defaults("awd-qrnn-ptb")
