"""LanguageModel.generate: one step per word with the state carried (the scores of every step equal those
of a forward pass over the whole prefix), seeds, greedy top-k 1, modes, and its errors."""

from __future__ import annotations

import pytest
import torch

from quasirnn.models import LanguageModel, language_model

V = 29
PROMPT = [3, 17, 5, 0, 22]


def make(cell, softmax="full", **kw):
    torch.manual_seed(0)
    kw.setdefault("window", 2 if cell == "qrnn" else None)
    cutoffs = [8, 18] if softmax == "adaptive" else []
    return LanguageModel(V, 10, 14, num_layers=3, cell=cell, softmax=softmax, cutoffs=cutoffs, dropout=0.3,
                         dropouth=0.2, dropouti=0.3, dropoute=0.1, **kw)


class Recorder:
    """Wraps a model's ``features``, ``_step`` (the words after the prompt, on the layers' Steppers)
    and ``decode``: the ids each ``features`` or ``_step`` call reads, the scores each ``decode`` returns."""

    def __init__(self, model):
        self.read, self.scores = [], []
        features, step, decode = model.features, model._step, model.decode

        def recorded_features(ids, hidden=None):
            self.read.append(ids.clone())
            return features(ids, hidden)

        def recorded_step(steppers, ids, hidden):
            self.read.append(ids.clone())
            return step(steppers, ids, hidden)

        def recorded_decode(x, *args, **kwargs):
            out = decode(x, *args, **kwargs)
            self.scores.append(out.clone())
            return out

        model.features, model._step, model.decode = recorded_features, recorded_step, recorded_decode


@pytest.mark.parametrize("cell, softmax, window", [
    ("qrnn", "full", 2), ("qrnn", "full", None), ("qrnn", "adaptive", 2), ("sru", "full", None),
    ("lstm", "full", None), ("lstm", "adaptive", None),
])
def test_each_step_reads_one_word_and_its_scores_equal_the_full_prefix_forward(cell, softmax, window):
    model = make(cell, softmax, window=window)
    rec = Recorder(model)
    words = list(model.generate(PROMPT, 8, generator=torch.Generator().manual_seed(1)))
    assert len(words) == 8 and all(isinstance(w, int) and 0 <= w < V for w in words)
    # the prompt once, then one word per step, never the prefix again (no step after the last word)
    assert [tuple(ids.shape) for ids in rec.read] == [(len(PROMPT), 1)] + [(1, 1)] * 7
    assert [ids.item() for ids in rec.read[1:]] == words[:-1]
    model.eval()
    with torch.no_grad():
        full, _ = model(torch.tensor(PROMPT + words[:-1]).view(-1, 1))  # (T, 1, V) over the whole prefix
    for step, scores in enumerate(rec.scores[:8]):
        assert scores.shape == (V,)
        torch.testing.assert_close(scores, full[len(PROMPT) - 1 + step, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["qrnn", "sru", "lstm"])
def test_a_float16_model_steps_like_its_full_prefix_and_near_float32(cell):
    model = make(cell, backend="torch").eval()
    half = make(cell, backend="torch").eval().half()
    rec = Recorder(half)
    words = list(half.generate(PROMPT, 6, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        ids = torch.tensor(PROMPT + words[:-1]).view(-1, 1)
        full_half, full = half(ids)[0][len(PROMPT) - 1:, 0], model(ids)[0][len(PROMPT) - 1:, 0]
    steps = torch.stack(rec.scores[:6])  # the forward passes below are recorded after them
    assert steps.dtype == torch.float16
    torch.testing.assert_close(steps, full_half, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(steps.float(), full, atol=2e-2, rtol=0)


@pytest.mark.parametrize("cell", ["qrnn", "sru", "lstm"])
def test_top_k_1_is_greedy_and_ignores_the_seed(cell):
    model = make(cell).eval()
    greedy = list(model.generate(PROMPT, 10, top_k=1, generator=torch.Generator().manual_seed(0)))
    assert list(model.generate(PROMPT, 10, top_k=1, temperature=3.0, generator=torch.Generator().manual_seed(9))) \
        == greedy == list(model.generate(PROMPT, 10, top_k=1))
    ids = list(PROMPT)
    with torch.no_grad():
        for _ in range(10):  # argmax of a forward pass over the whole prefix, word after word
            ids.append(int(model(torch.tensor(ids).view(-1, 1))[0][-1, 0].argmax()))
    assert ids[len(PROMPT):] == greedy


def uniform_model(cell):
    """A model whose next-word distribution is uniform over V words whatever it read."""
    model = LanguageModel(1000, 8, 12, num_layers=2, cell=cell)
    with torch.no_grad():
        model.encoder.weight.zero_()  # tied: the decoder's weight too; its bias is 0
    return model


@pytest.mark.parametrize("cell", ["qrnn", "sru", "lstm"])
def test_same_seed_same_words_different_seed_different_words(cell):
    model = uniform_model(cell)

    def words(seed):
        return list(model.generate([1, 2], 20, top_p=0.95, generator=torch.Generator().manual_seed(seed)))

    assert words(0) == words(0)
    assert words(0) != words(1)  # 20 uniform draws among 1000 words


def test_hidden_continues_a_previous_pass():
    model = make("qrnn").eval()
    with torch.no_grad():
        _, hidden = model(torch.tensor(PROMPT[:3]).view(-1, 1))
    continued = list(model.generate(PROMPT[3:], 6, top_k=1, hidden=hidden))
    assert continued == list(model.generate(PROMPT, 6, top_k=1))


def test_runs_in_eval_mode_under_inference_mode_and_restores_the_caller():
    model = make("qrnn")  # in training mode: dropout on
    assert model.training
    steps = model.generate(PROMPT, 5, top_k=1)
    first = next(steps)
    assert model.training and not torch.is_inference_mode_enabled()  # between words, the caller's state
    assert [first, *steps] == list(make("qrnn").eval().generate(PROMPT, 5, top_k=1))  # dropout was off
    assert model.training and torch.is_grad_enabled()


def test_accepts_a_tensor_prompt_and_one_word():
    model = make("sru").eval()
    assert list(model.generate(torch.tensor(PROMPT), 3, top_k=1)) == list(model.generate(PROMPT, 3, top_k=1))
    assert len(list(model.generate([4], 1))) == 1


@pytest.mark.parametrize("prompt, kwargs, message", [
    ([], {}, r"prompt_ids must be T >= 1 ids in \[0, 29\), got \[\]"),
    ([1, 29], {}, r"prompt_ids must be T >= 1 ids in \[0, 29\), got \[1, 29\]"),
    ([-1], {}, r"prompt_ids must be T >= 1 ids in \[0, 29\)"),
    ([1], {"max_words": 0}, "max_words must be an integer >= 1, got 0"),
    ([1], {"temperature": 0.0}, "temperature must be a finite number > 0"),
    ([1], {"top_p": 2.0}, r"top_p must be in \(0, 1\]"),
    ([1], {"top_k": 0}, "top_k must be an integer >= 1"),
])
def test_bad_arguments(prompt, kwargs, message):
    model = make("lstm")
    kwargs = {"max_words": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        next(model.generate(prompt, **kwargs))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("cell", ["qrnn", "sru"])
def test_a_short_prompt_is_read_on_the_steppers_a_long_one_through_the_layers(cell, dtype, monkeypatch):
    model = make(cell).eval().to(dtype)
    read = []
    features = model.features
    model.features = lambda ids, hidden=None: read.append(len(ids)) or features(ids, hidden)
    short = list(model.generate(PROMPT, 6, top_k=1))
    assert read == []  # the prompt and every word on the Steppers: no layer forward, no kernel to load
    monkeypatch.setattr(language_model, "STEPPED_PROMPT", len(PROMPT) - 1)
    assert list(model.generate(PROMPT, 6, top_k=1)) == short and read == [len(PROMPT)]
