"""``lm train --preset``: a recipe overridable by explicit options and kept on --resume (the recipes
themselves: tests/experiments/test_lm_recipes.py)."""

from __future__ import annotations

import json



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


def test_finetune_of_a_preset_run_takes_the_readmes_finetune_values(synthetic, tmp_path, cli):
    code, _, err = cli("lm", "train", "--data", synthetic, "--preset", "awd-qrnn-ptb", *SMALL, "--max-steps", "2",
                       "--out", "p")
    assert code == 0, err
    code, stdout, err = cli("lm", "finetune", "--checkpoint", "p", "--max-steps", "2", "--quiet")
    assert code == 0, err
    config = json.loads((tmp_path / "p-finetune" / "metrics.json").read_text())["config"]
    assert (config["seed"], config["epochs"], config["optimizer"], config["preset"]) == (404, 300, "asgd", "awd-qrnn-ptb")
    assert (config["wdrop"], config["alpha"], config["beta"], config["clip"]) == (0.1, 2.0, 1.0, 0.2)
