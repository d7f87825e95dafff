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
