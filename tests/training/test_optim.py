"""training/optim.py: the optimizer step the trainer takes (learning-rate scaling, clipping)."""

from __future__ import annotations

import pytest
import torch

from quasirnn.experiments.language_model import lm_loss
from quasirnn.models import LanguageModel
from quasirnn.training.optim import optimizer_step


def _step(model, opt, inputs, targets, hidden, clip, lr_scale=1.0):
    """The trainer's step: the task's loss, then optimizer_step."""
    loss, hidden = lm_loss(model, inputs, targets, hidden)
    optimizer_step(model, opt, loss, clip, lr_scale)
    return loss.item(), hidden


def test_train_step_scales_the_learning_rate_for_one_step_only():
    torch.manual_seed(0)
    model = LanguageModel(20, 8, 8, num_layers=1, cell="lstm", dropout=0, dropouth=0, dropouti=0, dropoute=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.randint(0, 20, (6, 2))
    before = model.decoder.bias.detach().clone()
    loss, hidden = _step(model, opt, ids[:-1], ids[1:], None, clip=0.0, lr_scale=0.5)
    grad = model.decoder.bias.grad
    torch.testing.assert_close(model.decoder.bias.detach(), before - 0.25 * grad)  # lr 0.5 × 0.5
    assert opt.param_groups[0]["lr"] == 0.5  # restored
    assert loss > 0 and len(hidden) == 1


def test_train_step_clips_the_gradient_norm():
    torch.manual_seed(0)
    model = LanguageModel(20, 8, 8, num_layers=1, cell="lstm")
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ids = torch.randint(0, 20, (6, 2))
    _step(model, opt, ids[:-1], ids[1:], None, clip=1e-3)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)
