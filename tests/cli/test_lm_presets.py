"""``lm train --preset``: the AWD-QRNN recipes as LMConfig values, overridable, kept on --resume."""

from __future__ import annotations

import json

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


SMALL = ("--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--bptt", "10", "--batch-size", "8",
         "--eval-batch-size", "4", "--quiet")


def test_explicit_options_override_the_preset_and_resume_keeps_it(synthetic, tmp_path, cli):
    code, stdout, err = cli("lm", "train", "--data", synthetic, "--preset", "awd-qrnn-ptb", *SMALL, "--lr", "5",
                            "--max-steps", "3", "--no-progress", "--out", "p")
    assert code == 0, err
    assert "preset awd-qrnn-ptb (AWD-QRNN reports valid 60.6, test 58.3, finetuned test 56.7)" in stdout
    config = json.loads((tmp_path / "p" / "metrics.json").read_text())["config"]
    assert config["preset"] == "awd-qrnn-ptb"
    assert (config["emb_size"], config["hidden_size"], config["num_layers"], config["lr"]) == (16, 24, 2, 5.0)
    assert (config["optimizer"], config["clip"], config["seed"], config["epochs"], config["dropouti"]) == (
        "sgd", 0.2, 9001, 550, 0.4)
    assert config["variable_bptt"] and config["softmax"] == "full"
    code, _, err = cli("lm", "train", "--resume", "p", "--preset", "awd-qrnn-wt2", "--quiet")
    assert code != 0 and "--preset awd-qrnn-wt2 (checkpoint: awd-qrnn-ptb)" in err
    code, _, err = cli("lm", "train", "--resume", "p", "--max-steps", "5", "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert metrics["steps"] == 5 and metrics["config"]["lr"] == 5.0 and metrics["config"]["seed"] == 9001


def test_wt103_preset_softmax_can_be_replaced(synthetic, tmp_path, cli):
    # its cutoffs are for 267,735 words: on a 30-word corpus they are refused with a clear message ...
    code, _, err = cli("lm", "train", "--data", synthetic, "--preset", "awd-qrnn-wt103", *SMALL, "--max-steps", "1",
                       "--out", "a")
    assert code != 0 and "cutoffs must be strictly increasing integers in [1, " in err and "Traceback" not in err
    # ... and --softmax drops them (auto picks the full softmax for so small a vocabulary)
    code, _, err = cli("lm", "train", "--data", synthetic, "--preset", "awd-qrnn-wt103", *SMALL, "--max-steps", "1",
                       "--softmax", "auto", "--out", "b")
    assert code == 0, err
    config = json.loads((tmp_path / "b" / "metrics.json").read_text())["config"]
    assert config["softmax"] == "full" and config["optimizer"] == "adam" and config["dropoute"] == 0.0
