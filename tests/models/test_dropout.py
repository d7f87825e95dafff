"""LockedDropout and embedded_dropout (AWD-LSTM §4.2–4.3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quasirnn.models import LockedDropout, embedded_dropout


def test_locked_dropout_mask_is_shared_across_time():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    x = torch.rand(12, 4, 30) + 0.5  # strictly positive, so out / x recovers the mask
    out = drop(x)
    mask = out / x  # (T, B, N)
    assert torch.allclose(mask, mask[:1].expand_as(mask))  # same mask at every time step
    assert set(mask.unique().tolist()) <= {0.0, 2.0}  # kept units scaled by 1 / (1 - p)
    assert (mask[0] == 0).any() and (mask[0] != 0).any()
    # different sequences of the batch get different masks
    assert not torch.equal(mask[0, 0], mask[0, 1])


def test_locked_dropout_rate_and_expectation():
    torch.manual_seed(0)
    drop = LockedDropout(0.3).train()
    out = drop(torch.ones(2, 200, 500))
    assert abs((out[0] == 0).float().mean().item() - 0.3) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.02


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_locked_dropout_identity_in_eval_or_p0(p):
    drop = LockedDropout(p)
    x = torch.randn(5, 3, 7)
    assert drop.eval()(x) is x
    if p == 0.0:
        assert drop.train()(x) is x


def test_locked_dropout_rejects_bad_p():
    with pytest.raises(ValueError):
        LockedDropout(1.0)
    with pytest.raises(ValueError):
        LockedDropout(-0.1)


def test_embedded_dropout_drops_whole_word_types():
    torch.manual_seed(0)
    embed = nn.Embedding(50, 8)
    words = torch.arange(50).repeat(6, 1)  # (T=6, B=50): every word at every time step
    out = embedded_dropout(embed, words, dropout=0.5, training=True)  # (6, 50, 8)
    assert out.shape == (6, 50, 8)
    dropped = (out == 0).all(dim=-1)  # (6, 50)
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))  # a word is dropped everywhere or nowhere
    assert dropped[0].any() and not dropped[0].all()
    kept = ~dropped[0]
    assert torch.allclose(out[0, kept], embed.weight[kept] * 2.0)  # scaled by 1 / (1 - p)


def test_embedded_dropout_eval_is_plain_lookup():
    embed = nn.Embedding(20, 4, padding_idx=0)
    words = torch.randint(0, 20, (5, 3))
    assert torch.equal(embedded_dropout(embed, words, 0.5, training=False), embed(words))
    assert torch.equal(embedded_dropout(embed, words, 0.0, training=True), embed(words))


def test_embedded_dropout_gradient_only_to_kept_rows():
    torch.manual_seed(1)
    embed = nn.Embedding(30, 5)
    words = torch.arange(30).view(30, 1)
    out = embedded_dropout(embed, words, 0.5, training=True)
    out.sum().backward()
    dropped = (out == 0).all(dim=-1).squeeze(1)
    assert torch.all(embed.weight.grad[dropped] == 0)
    assert torch.allclose(embed.weight.grad[~dropped], torch.full((int((~dropped).sum()), 5), 2.0))
