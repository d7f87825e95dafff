"""``lm train`` with the AWD-LSTM recipe's parts on the synthetic corpus: weight drop, AR/TAR, NT-ASGD
(its switch, the averaged weights it validates, tests and saves, an exact resume in both phases), the
best validation's weights kept and tested, the test batch size."""

from __future__ import annotations

import json

import pytest
import torch

#: lr 100 makes validation worse at epoch 3 (the switch with --nonmono 1); a fixed, deterministic run
RECIPE = ("--optimizer", "sgd", "--lr", "100", "--nonmono", "1", "--lr-decay", "1", "--wdrop", "0.2", "--alpha", "2",
          "--beta", "1", "--keep-best", "--variable-bptt", "--dropout", "0.2", "--dropouth", "0.2", "--dropouti", "0.3",
          "--dropoute", "0.05", "--threads", "1", "--precision", "32")  # dropouts: lm train's defaults until issue 33


def read_metrics(out):
    return json.loads((out / "metrics.json").read_text())


def read_log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def load(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def test_regularisers_change_the_training_loss_not_the_logged_one(synthetic, tmp_path, cli, tiny):
    runs = {}
    for name, extra in {"plain": (), "arat": ("--alpha", "2", "--beta", "1")}.items():
        code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--max-steps", "2", "--precision", "32",
                           "--out", tmp_path / name, *extra)
        assert code == 0, err
        runs[name] = [r["loss"] for r in read_log(tmp_path / name) if r["split"] == "train"]
    # step 1: the same weights and dropout masks, so the same cross-entropy; step 2 follows other gradients
    assert runs["arat"][0] == runs["plain"][0] and runs["arat"][1] != runs["plain"][1]
    config = read_metrics(tmp_path / "arat")["config"]
    assert (config["alpha"], config["beta"], config["wdrop"], config["nonmono"]) == (2.0, 1.0, 0.0, 5)


def test_nt_asgd_switches_and_resumes_exactly_in_both_phases(synthetic, tmp_path, cli, tiny):
    opts = ("--data", synthetic, *tiny, *RECIPE, "--epochs", "5")
    code, _, err = cli("lm", "train", *opts, "--out", tmp_path / "straight")
    assert code == 0, err
    straight = read_metrics(tmp_path / "straight")
    assert [h["averaged"] for h in straight["history"]] == [False] * 3 + [True] * 2  # the switch after epoch 3
    assert straight["history"][2]["val_ppl"] > straight["history"][0]["val_ppl"]  # awd's condition, nonmono 1
    a = load(tmp_path / "straight")
    names = [name for name, p in _built(a).named_parameters() if p.requires_grad]  # the optimizer's order
    ax = {name: a["optimizer"]["state"][i]["ax"] for i, name in enumerate(names)}
    assert all(torch.equal(a["model"][name], ax[name]) for name in ax)  # the saved model is the average
    assert any(not torch.equal(a["training_weights"][name], ax[name]) for name in ax)
    for stop in (60, 170):  # in the SGD phase (epoch 2), in the averaging phase (epoch 4)
        out = tmp_path / f"split-{stop}"
        code, _, err = cli("lm", "train", *opts, "--out", out, "--max-steps", str(stop))
        assert code == 0, err
        code, _, err = cli("lm", "train", "--resume", out, "--max-steps", "0", "--quiet")
        assert code == 0, err
        resumed, b = read_metrics(out), load(out)
        untimed = lambda history: [{k: v for k, v in h.items() if k != "train_time_s"} for h in history]  # noqa: E731
        assert untimed(resumed["history"]) == untimed(straight["history"])
        assert resumed["test_loss"] == pytest.approx(straight["test_loss"], rel=1e-6)
        for entry in ("model", "training_weights", "best_model"):
            for key in a[entry]:
                torch.testing.assert_close(b[entry][key], a[entry][key], rtol=1e-5, atol=1e-6)
        for i, state in a["optimizer"]["state"].items():
            for key in ("ax", "mu", "eta", "step"):
                torch.testing.assert_close(b["optimizer"]["state"][i][key], state[key], rtol=1e-5, atol=1e-6)
        assert b["schedule"] == a["schedule"]


def _built(checkpoint):
    """The model a checkpoint's configuration describes (for its parameter order)."""
    from quasirnn.experiments.language_model import LMConfig, build_model

    config = LMConfig.from_dict(checkpoint["config"])
    return build_model(config.model, len(checkpoint["vocab"]))


def test_keep_best_tests_the_best_validation_and_eval_reproduces_it(synthetic, tmp_path, cli, tiny):
    # lr 300 makes epoch 2 far worse than epoch 1: the best weights are epoch 1's
    opts = [o for o in RECIPE]
    opts[opts.index("100")] = "300"
    code, stdout, err = cli("lm", "train", "--data", synthetic, *tiny, *opts, "--epochs", "2",
                            "--test-batch-size", "1", "--out", tmp_path / "b")
    assert code == 0, err
    m, ckpt = read_metrics(tmp_path / "b"), load(tmp_path / "b")
    first, last = (h["val_ppl"] for h in m["history"])
    assert last > first and m["val_ppl"] == pytest.approx(first) and m["last_val_ppl"] == pytest.approx(last)
    assert ckpt["best"]["step"] == m["history"][0]["step"] == m["best_step"]
    assert any(not torch.equal(ckpt["best_model"][k], ckpt["model"][k]) for k in ckpt["model"])
    assert f"valid ppl {first:.2f} (best) | test ppl {m['test_ppl']:.2f}" in stdout
    code, out, err = cli("lm", "eval", "--checkpoint", tmp_path / "b", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ppl"] == pytest.approx(m["test_ppl"], rel=1e-6)
    test_tokens = sum(len(line.split()) + 1 for line in (synthetic / "ptb.test.txt").read_text().splitlines())
    assert result["tokens"] == test_tokens - 1  # --test-batch-size 1: one column, every token predicted once
    code, out, err = cli("lm", "eval", "--checkpoint", tmp_path / "b", "--split", "valid", "--json")
    assert json.loads(out)["ppl"] == pytest.approx(first, rel=1e-6)
