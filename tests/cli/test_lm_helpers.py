"""Helpers of `quasirnn lm`: option parsing, devices, the training step, malloc tuning."""

from __future__ import annotations

import sys

import pytest
import torch

from quasirnn.cli import lm
from quasirnn.cli.main import build_parser
from quasirnn.errors import ConfigError
from quasirnn.models import LanguageModel


def parse(*argv):
    return build_parser().parse_args(["lm", "train", *argv])


def test_window_option_int_or_list():
    assert parse("--window", "2").window == 2
    assert parse("--window", "3,1,1").window == [3, 1, 1]
    with pytest.raises(SystemExit):
        parse("--window", "0")
    with pytest.raises(SystemExit):
        parse("--window", "a,b")


def test_unset_options_fall_back_to_defaults():
    config = lm._config_from_args(parse("--emb-size", "50", "--no-tie-weights"))
    assert config["emb_size"] == 50 and config["tie_weights"] is False
    assert config["hidden_size"] == lm.DEFAULTS.hidden_size and config["cell"] == lm.DEFAULTS.cell


def test_every_config_key_is_fixed_or_session():
    names = set(lm.LMConfig.__dataclass_fields__)
    assert set(lm.FIXED_KEYS) | set(lm.SESSION_KEYS) == names
    assert not set(lm.FIXED_KEYS) & set(lm.SESSION_KEYS)


def test_resolve_device():
    assert lm.resolve_device("cpu") == torch.device("cpu")
    assert lm.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        lm.resolve_device("gpu0")


def test_train_step_scales_the_learning_rate_for_one_step_only():
    torch.manual_seed(0)
    model = LanguageModel(20, 8, 8, num_layers=1, cell="lstm", dropout=0, dropouth=0, dropouti=0, dropoute=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.randint(0, 20, (6, 2))
    before = model.decoder.bias.detach().clone()
    loss, hidden = lm.train_step(model, opt, ids[:-1], ids[1:], None, clip=0.0, lr_scale=0.5)
    grad = model.decoder.bias.grad
    torch.testing.assert_close(model.decoder.bias.detach(), before - 0.25 * grad)  # lr 0.5 × 0.5
    assert opt.param_groups[0]["lr"] == 0.5  # restored
    assert loss > 0 and len(hidden) == 1


def test_train_step_clips_the_gradient_norm():
    torch.manual_seed(0)
    model = LanguageModel(20, 8, 8, num_layers=1, cell="lstm")
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ids = torch.randint(0, 20, (6, 2))
    lm.train_step(model, opt, ids[:-1], ids[1:], None, clip=1e-3)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_keep_freed_memory(monkeypatch):
    monkeypatch.setenv("QUASIRNN_MALLOC_TUNING", "0")
    assert lm.keep_freed_memory() is False
    monkeypatch.delenv("QUASIRNN_MALLOC_TUNING")
    applied = lm.keep_freed_memory()
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert applied is True
