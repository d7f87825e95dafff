"""``lm finetune`` (awd-lstm-lm's finetune.py): a new run from a trained one, with averaged SGD from the
first step, the best validation kept (the trained weights first), the trained run only read, and a
resume like any run's."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from test_lm_recipe import RECIPE, load, read_metrics  # the recipe's options on the synthetic corpus


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def trained(synthetic, tmp_path, cli, tiny):
    """A tiny run of the recipe at a learning rate that learns (2 epochs, keep-best)."""
    opts = [o for o in RECIPE]
    opts[opts.index("100")] = "10"
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, *opts, "--epochs", "2", "--out", tmp_path / "run")
    assert code == 0, err
    return tmp_path / "run"


def test_finetune_writes_a_new_run_and_leaves_the_trained_one_alone(trained, tmp_path, cli):
    before = _digest(trained)
    source = read_metrics(trained)
    code, stdout, err = cli("lm", "finetune", "--checkpoint", trained, "--epochs", "3", "--quiet")
    assert code == 0, err
    out = tmp_path / "run-finetune"  # beside the trained run
    assert _digest(trained) == before
    m = read_metrics(out)
    config = m["config"]
    assert (config["optimizer"], config["keep_best"], config["lr_decay"], config["when"]) == ("asgd", True, 1.0, [])
    assert config["finetuned_from"] == str(trained.resolve()) and f"fine-tuning of {trained.resolve()}" in stdout
    for key in ("lr", "wdrop", "alpha", "beta", "nonmono", "seed", "batch_size", "hidden_size", "data"):
        assert config[key] == source["config"][key]  # the trained run's hyper-parameters
    assert m["stop_reason"] in ("epochs", "nonmono") and all(h["averaged"] for h in m["history"])
    # the first best is the trained weights' validation: the tested weights are never worse than them
    assert m["val_ppl"] <= source["val_ppl"] * (1 + 1e-9)
    ckpt = load(out)
    if ckpt["best"]["step"] == 0:  # no epoch improved: the tested weights are the trained ones
        assert all(torch.equal(ckpt["best_model"][k], load(trained)["best_model"][k]) for k in ckpt["best_model"])
    code, stdout, err = cli("lm", "eval", "--checkpoint", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["ppl"] == pytest.approx(m["test_ppl"], rel=1e-6)


def test_finetune_refuses_an_earlier_run_and_bad_arguments(trained, tmp_path, cli):
    code, _, err = cli("lm", "finetune", "--checkpoint", trained, "--out", trained, "--max-steps", "1", "--quiet")
    assert code != 0 and "holds an earlier run" in err and "Traceback" not in err
    code, _, err = cli("lm", "finetune", "--quiet")
    assert code != 0 and "lm finetune needs --checkpoint RUN" in err
    code, _, err = cli("lm", "finetune", "--checkpoint", tmp_path / "nowhere", "--quiet")
    assert code != 0 and "Traceback" not in err
    code, _, err = cli("lm", "finetune", "--checkpoint", trained, "--wdrop", "0.3")
    assert code != 0 and "unrecognized arguments: --wdrop" in err  # the model and its regularisers are the run's


def test_an_interrupted_finetune_resumes_exactly(trained, tmp_path, cli):
    code, _, err = cli("lm", "finetune", "--checkpoint", trained, "--epochs", "2", "--out", tmp_path / "straight",
                       "--seed", "404", "--quiet")
    assert code == 0, err
    code, _, err = cli("lm", "finetune", "--checkpoint", trained, "--epochs", "2", "--out", tmp_path / "split",
                       "--seed", "404", "--max-steps", "50", "--quiet")
    assert code == 0, err
    assert read_metrics(tmp_path / "split")["config"]["seed"] == 404
    code, _, err = cli("lm", "finetune", "--resume", tmp_path / "split", "--max-steps", "0", "--quiet")
    assert code == 0, err
    a, b = load(tmp_path / "straight"), load(tmp_path / "split")
    assert a["progress"]["step"] == b["progress"]["step"]
    for entry in ("model", "training_weights", "best_model"):
        for key in a[entry]:
            torch.testing.assert_close(b[entry][key], a[entry][key], rtol=1e-5, atol=1e-6)
    assert a["schedule"] == b["schedule"] and a["best"] == b["best"]
