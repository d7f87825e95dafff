"""AWD-LSTM's activation regularisers in the language model's training loss (experiments/language_model/task.py):
AR on the last layer's dropped outputs, TAR on its undropped ones, added to the loss that is backpropagated
and not to the cross-entropy that is logged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from quasirnn.experiments.language_model import activation_regularisation, lm_loss, lm_training_loss
from quasirnn.models import LanguageModel


def _model(cell="lstm"):
    torch.manual_seed(0)
    return LanguageModel(30, 6, 8, num_layers=2, cell=cell, dropout=0.5, dropouth=0.2, dropouti=0.2, dropoute=0.1)


@pytest.mark.parametrize("cell", ["lstm", "qrnn"])
def test_ar_and_tar_against_a_manual_computation(cell):
    model = _model(cell)
    ids = torch.randint(0, 30, (7, 3))
    inputs, targets = ids[:-1], ids[1:]
    torch.manual_seed(1)
    total, ce, hidden = lm_training_loss(model, inputs, targets, None, alpha=2.0, beta=1.0)
    torch.manual_seed(1)  # the same dropout masks
    raw, dropped, _ = model.features(inputs)
    raw, dropped = raw.detach(), dropped.detach()
    assert not torch.equal(raw, dropped)  # the output dropout acts: AR and TAR read different tensors
    manual_ce = F.cross_entropy(model.decoder(dropped).reshape(-1, 30), targets.reshape(-1))
    ar = 2.0 * sum(float(v) ** 2 for v in dropped.flatten()) / dropped.numel()
    diffs = raw[1:] - raw[:-1]
    tar = 1.0 * sum(float(v) ** 2 for v in diffs.flatten()) / diffs.numel()
    torch.testing.assert_close(ce, manual_ce)
    assert total.item() == pytest.approx(manual_ce.item() + ar + tar, rel=1e-5)
    assert len(hidden) == 2 and total.requires_grad


def test_without_regularisers_it_is_the_cross_entropy_and_consumes_the_same_random_numbers():
    model = _model()
    ids = torch.randint(0, 30, (6, 2))
    torch.manual_seed(2)
    total, ce, _ = lm_training_loss(model, ids[:-1], ids[1:], None)
    torch.manual_seed(2)
    plain, _ = lm_loss(model, ids[:-1], ids[1:], None)
    assert total is ce and torch.equal(ce, plain)
    torch.manual_seed(2)
    _, regularised, _ = lm_training_loss(model, ids[:-1], ids[1:], None, alpha=2.0, beta=1.0)
    assert torch.equal(regularised, plain)  # the logged loss does not see AR/TAR


def test_tar_of_a_one_step_window_is_zero_and_bf16_is_summed_in_float32():
    raw = torch.randn(1, 2, 3, dtype=torch.bfloat16)
    assert float(activation_regularisation(raw, raw, alpha=0.0, beta=1.0)) == 0.0
    out = activation_regularisation(raw, raw, alpha=1.0, beta=1.0)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(float(raw.float().pow(2).mean()))
