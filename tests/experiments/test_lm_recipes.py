"""The AWD-QRNN recipes of ``lm train --preset`` (experiments/language_model/presets.py): valid
LMConfig values with the numbers of awd-lstm-lm's README."""

from __future__ import annotations

import pytest

from quasirnn.experiments.language_model import PRESETS, LMConfig


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_configs_with_the_readme_numbers(name):
    preset = PRESETS[name]
    assert isinstance(preset.config, LMConfig) and preset.config == LMConfig.from_dict(preset.config.to_dict())
    config = preset.config.to_dict()
    assert config["cell"] == "qrnn" and config["emb_size"] == 400 and config["num_layers"] == 4
    assert config["window"] is None and preset.config.resolved().model.window == [2, 1, 1, 1]  # AWD-QRNN's widths
    assert config["variable_bptt"] and config["time_budget"] == 0
    assert config["preset"] == name and "test" in preset.reported and name in preset.summary()


def test_preset_values_follow_the_readme_commands():
    ptb, wt2, wt103 = (PRESETS[f"awd-qrnn-{n}"].config.to_dict() for n in ("ptb", "wt2", "wt103"))
    assert (ptb["hidden_size"], ptb["batch_size"], ptb["clip"], ptb["dropouth"], ptb["dropouti"], ptb["seed"],
            ptb["epochs"]) == (1550, 20, 0.2, 0.3, 0.4, 9001, 550)
    assert (wt2["batch_size"], wt2["clip"], wt2["dropouth"], wt2["seed"], wt2["epochs"]) == (40, 0.25, 0.2, 4002, 500)
    assert (wt103["hidden_size"], wt103["bptt"], wt103["batch_size"], wt103["optimizer"], wt103["lr"],
            wt103["epochs"], wt103["softmax"]) == (2500, 140, 60, "adam", 1e-3, 14, "adaptive")
    assert PRESETS["awd-qrnn-ptb"].reported == {"valid": 60.6, "test": 58.3, "finetuned test": 56.7}
    assert PRESETS["awd-qrnn-wt2"].reported["test"] == 66.8 and PRESETS["awd-qrnn-wt103"].reported["test"] == 33.0


#: Every hyper-parameter of the README's QRNN commands with main.py's defaults for the rest, typed out
#: from the awd-lstm-lm README and main.py (not read through the presets' parser).
README = {
    "awd-qrnn-ptb": {"batch_size": 20, "clip": 0.2, "wdrop": 0.1, "hidden_size": 1550, "num_layers": 4, "emb_size": 400,
                     "dropouth": 0.3, "seed": 9001, "dropouti": 0.4, "epochs": 550, "lr": 30.0, "optimizer": "sgd",
                     "alpha": 2.0, "beta": 1.0, "dropout": 0.4, "dropoute": 0.1, "wdecay": 1.2e-6, "bptt": 70,
                     "nonmono": 5, "when": []},
    "awd-qrnn-wt2": {"epochs": 500, "clip": 0.25, "dropouti": 0.4, "dropouth": 0.2, "hidden_size": 1550,
                     "num_layers": 4, "seed": 4002, "wdrop": 0.1, "batch_size": 40, "emb_size": 400, "lr": 30.0,
                     "optimizer": "sgd", "alpha": 2.0, "beta": 1.0, "dropout": 0.4, "dropoute": 0.1, "wdecay": 1.2e-6,
                     "bptt": 70, "nonmono": 5, "when": []},
    "awd-qrnn-wt103": {"epochs": 14, "num_layers": 4, "emb_size": 400, "hidden_size": 2500, "alpha": 0.0, "beta": 0.0,
                       "dropoute": 0.0, "dropouth": 0.1, "dropouti": 0.1, "dropout": 0.1, "wdrop": 0.0, "wdecay": 0.0,
                       "bptt": 140, "batch_size": 60, "optimizer": "adam", "lr": 1e-3, "when": [12], "clip": 0.25,
                       "seed": 1111},
}
#: What awd-lstm-lm's code fixes: tied QRNN, windows 2 then 1, variable BPTT, validation batch 10, test batch 1,
#: the best validation's model tested, float32; no other schedule than its own.
FIXED = {"cell": "qrnn", "tie_weights": True, "zoneout": 0.0, "variable_bptt": True, "eval_batch_size": 10,
         "test_batch_size": 1, "keep_best": True, "precision": "32", "lr_decay": 1.0, "time_budget": 0.0}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_carry_every_published_hyper_parameter(name):
    config = PRESETS[name].config.to_dict()
    assert {k: config[k] for k in README[name]} == README[name]
    assert {k: config[k] for k in FIXED} == FIXED
    assert config["softmax"] == ("adaptive" if name == "awd-qrnn-wt103" else "full")  # awd's split above 75,000 words


def test_fine_tuning_commands():
    assert PRESETS["awd-qrnn-ptb"].finetune == {"seed": 404, "epochs": 300}  # the README's finetune.py command
    assert PRESETS["awd-qrnn-wt2"].finetune == {} and PRESETS["awd-qrnn-wt103"].finetune_command == ""
    assert "--seed 404 --dropouti 0.4 --epochs 300" in PRESETS["awd-qrnn-ptb"].finetune_command


def test_awd_command_lines_are_read_option_by_option():
    from quasirnn.experiments.language_model.presets import awd_values

    assert awd_values("main.py --model QRNN --when 25 35 --lr 1e-3 --save x.pt") == {"when": [25, 35], "lr": 1e-3}
    with pytest.raises(ValueError, match="unknown awd-lstm-lm option --tied"):
        awd_values("main.py --tied 1")
    with pytest.raises(ValueError, match="the presets are QRNN recipes, got --model LSTM"):
        awd_values("main.py --model LSTM")
