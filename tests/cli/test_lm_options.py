"""`quasirnn lm train`'s options as the command reads them: windows, defaults, what a resume keeps."""

from __future__ import annotations

import pytest

from quasirnn.cli.common import given_options
from quasirnn.cli.main import build_parser
from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model import EXPERIMENT, LMConfig, build_model
from quasirnn.training.config import FIXED, INHERITED, SESSION
from quasirnn.training.launch import start_or_resume


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
