"""The evaluation of a language model (quasirnn.experiments.language_model.evaluate), the one place its
perplexity is computed: training's validation and test, and ``lm eval``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from quasirnn.experiments.language_model import evaluate
from quasirnn.models import LanguageModel

V, E, H = 37, 12, 20  # vocabulary, embedding and hidden sizes
CELLS = ("lstm", "qrnn", "sru")


def make(cell):
    """A 3-layer model with every dropout on (evaluation must switch them off)."""
    torch.manual_seed(0)
    return LanguageModel(V, E, H, num_layers=3, cell=cell, dropout=0.3, dropouth=0.2, dropouti=0.3, dropoute=0.1)


@pytest.mark.parametrize("cell", CELLS)
def test_evaluate_matches_a_manual_computation(cell):
    model = make(cell).train()
    source = torch.randint(0, V, (11, 3))
    loss, count = evaluate(model, source, bptt=4)
    assert model.training  # mode restored
    assert count == 10 * 3
    model.eval()
    with torch.no_grad():
        logits, _ = model(source[:-1])
    expected = F.cross_entropy(logits.reshape(-1, V), source[1:].reshape(-1)).item()
    assert math.isclose(loss, expected, rel_tol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_evaluate_with_the_adaptive_softmax_carries_the_state_like_one_window(cell):
    """evaluate() carries the state and gives the same mean NLL as the loss over one window."""
    torch.manual_seed(0)
    order = torch.randperm(V)
    model = LanguageModel(V, E, H, num_layers=2, cell=cell, softmax="adaptive", cutoffs=[5, 20], word_order=order,
                          tie_weights=True).eval()
    source = torch.randint(0, V, (15, 2))
    nll, count = evaluate(model, source, bptt=20)
    with torch.no_grad():
        logp, _ = model(source[:-1])
    torch.testing.assert_close(torch.tensor(nll), -logp.gather(-1, source[1:].unsqueeze(-1)).mean(), rtol=1e-5, atol=1e-6)
    # in windows of 4 steps, the state carried across them: the same NLL
    assert math.isclose(evaluate(model, source, bptt=4)[0], nll, rel_tol=1e-5)


class TwoRanks:
    """A distributed run of two ranks whose other rank saw exactly what this one saw."""

    enabled = True

    def __init__(self):
        self.calls = 0

    def sum(self, values):
        self.calls += 1
        return [2.0 * v for v in values]


def test_evaluate_runs_in_the_precision_given_and_sums_over_the_ranks():
    model = make("qrnn").eval()
    source = torch.randint(0, V, (11, 3))
    loss, count = evaluate(model, source, bptt=4)
    bf16, _ = evaluate(model, source, bptt=4, precision="bf16")
    assert bf16 != loss and math.isclose(bf16, loss, rel_tol=0.05)
    with pytest.raises(ValueError, match="resolved precision"):
        evaluate(model, source, bptt=4, precision="auto")
    assert evaluate(model, source, bptt=4, dist=TwoRanks()) == (pytest.approx(loss), 2 * count)
    # a rank without columns still takes part in the sum
    idle = TwoRanks()
    assert evaluate(model, source[:, :0], bptt=4, dist=idle) == (pytest.approx(math.nan, nan_ok=True), 0)
    assert idle.calls == 1
    assert math.isnan(evaluate(model, source[:, :0], bptt=4)[0])
