"""Helpers of `quasirnn lm`: option parsing, devices, the training step, malloc tuning."""

from __future__ import annotations

import sys

import pytest
import torch

from quasirnn.cli.common import given_options
from quasirnn.cli.main import build_parser
from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model import EXPERIMENT, LMConfig, build_model, lm_loss
from quasirnn.models import LanguageModel
from quasirnn.training.config import FIXED, INHERITED, SESSION
from quasirnn.training.device import keep_freed_memory, resolve_device
from quasirnn.training.launch import start_or_resume
from quasirnn.training.optim import optimizer_step


def parse(*argv):
    return build_parser().parse_args(["lm", "train", *argv])


def start(args):
    """What ``lm train`` starts from these parsed options."""
    return start_or_resume(EXPERIMENT, given_options(args, EXPERIMENT.defaults), args.resume, args.out, args.overwrite)


def test_window_option_int_or_list():
    assert parse("--window", "2").window == 2
    assert parse("--window", "3,1,1").window == [3, 1, 1]
    assert parse("--window", "0").window == 0  # read here; the model refuses it (tests/experiments/test_model_rules.py)
    with pytest.raises(SystemExit):
        parse("--window", "a,b")


def test_an_int_window_is_every_layer_and_unset_is_the_awd_qrnn_preset(tmp_path):
    config, _, _, _ = start(parse("--window", "3", "--num-layers", "2", "--emb-size", "8", "--hidden-size", "8"))
    assert config.model.window == 3 and config.resolved().model.window == [3, 3]
    assert build_model(config.model, 20).windows == (3, 3)
    default, _, _, _ = start(parse("--num-layers", "4"))
    assert default.model.window is None and default.resolved().model.window == [2, 1, 1, 1]


def test_a_resume_compares_windows_by_what_they_mean():
    saved = LMConfig().replace(num_layers=3).resolved().replace(window=[2, 2, 2]).to_dict()
    assert LMConfig().resumed(saved, {"window": 2}, "c.pt").model.window == [2, 2, 2]  # 2 is every layer: no conflict
    with pytest.raises(ConfigError, match=r"--window \[2, 1, 1\] \(checkpoint: \[2, 2, 2\]\)"):
        LMConfig().resumed(saved, {"window": [2, 1, 1]}, "c.pt")
    old = {**saved, "window": 2}  # written when an int meant the first layer only
    assert LMConfig().resumed(old, {}, "c.pt").model.window == [2, 1, 1]


def test_unset_options_fall_back_to_defaults():
    config, _, _, _ = start(parse("--emb-size", "50", "--no-tie-weights", "--lr", "0.5"))
    assert config.model.emb_size == 50 and config.model.tie_weights is False and config.optim.lr == 0.5
    assert config.model.hidden_size == EXPERIMENT.defaults.model.hidden_size
    assert config.model.cell == EXPERIMENT.defaults.model.cell
    assert config.optim.clip == EXPERIMENT.defaults.optim.clip and config.run.epochs == EXPERIMENT.defaults.run.epochs


def test_what_a_resume_keeps_is_field_metadata():
    kinds = LMConfig.resume_kinds()
    assert kinds["window"] == kinds["lr"] == kinds["bptt"] == FIXED
    assert kinds["epochs"] == kinds["max_steps"] == kinds["time_budget"] == kinds["checkpoint_every"] == INHERITED
    assert kinds["device"] == kinds["data"] == SESSION
    assert set(kinds) == set(LMConfig().to_dict())


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")


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


def test_keep_freed_memory(monkeypatch):
    monkeypatch.setenv("QUASIRNN_MALLOC_TUNING", "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv("QUASIRNN_MALLOC_TUNING")
    applied = keep_freed_memory()
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert applied is True
