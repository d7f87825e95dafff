"""`quasirnn translate train | eval | translate` end to end on a small real slice of Multi30k:
metrics, checkpoint, resume, eval, translation from arguments and stdin, user-facing errors."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pytest
import torch

from quasirnn.checkpoint_file import save_checkpoint

#: A tiny model that runs a few steps in seconds on one thread.
TINY = ("--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--batch-size", "16", "--eval-batch-size", "30",
        "--max-len", "120", "--threads", "1", "--final-beam", "2", "--no-progress")


def read_metrics(out):
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module", params=["qrnn", "lstm"])
def tiny_run(request, multi30k_slice, tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("translate") / request.param
    result = cli("translate", "train", "--data", multi30k_slice, "--cell", request.param, "--out", out, *TINY,
                 "--max-steps", "3")
    return request.param, out, result


def test_train_writes_metrics_and_checkpoint(tiny_run):
    cell, out, (code, stdout, err) = tiny_run
    assert code == 0, err
    assert (out / "checkpoint.pt").is_file()
    m = read_metrics(out)
    for key in ("val_bleu", "test_bleu", "test_bleu_greedy", "best_val_bleu_greedy"):
        assert 0.0 <= m[key] <= 100.0, key
    assert m["chars_per_s"] > 0 and m["params"] > 1000 and m["steps"] == 3
    assert m["stop_reason"] == "max_steps"
    assert m["config"]["cell"] == cell and m["config"]["hidden_size"] == 24 and m["final_beam"] == 2
    # unset windows take the paper's pattern for the given --num-layers 2 (the LSTM has none to store);
    # patience defaults to 2
    windows = ([6, 2], [2, 1]) if cell == "qrnn" else (None, None)
    assert (m["config"]["encoder_window"], m["config"]["decoder_window"]) == windows
    assert m["config"]["lr_patience"] == 2
    # stopped mid-epoch: the weights of step 3 are validated (and tested), the history lists completed epochs only
    assert m["best_step"] == 3 and m["history"] == [] and m["epochs_completed"] == 0 and m["finished"] is True
    assert "test_2016_flickr BLEU" in stdout


def test_resume_continues_the_step_count(tiny_run, cli, multi30k_slice):
    cell, out, (code, _, err) = tiny_run
    assert code == 0, err
    code, stdout, err = cli("translate", "train", "--resume", out, "--max-steps", "5", "--final-beam", "1",
                            "--no-progress")
    assert code == 0, err
    m = read_metrics(out)
    assert m["steps"] == 5 and m["best_step"] in (3, 5) and m["final_beam"] == 1
    assert [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
            if r["split"] == "train"] == [1, 2, 3, 4, 5]
    code, _, err = cli("translate", "train", "--resume", out, "--hidden-size", "32", "--max-steps", "6")
    assert code == 2 and "--hidden-size 32 (checkpoint: 24)" in err


def test_eval_and_translate_from_arguments_and_stdin(tiny_run, cli, multi30k_slice, monkeypatch):
    cell, out, (code, _, err) = tiny_run
    assert code == 0, err
    code, stdout, err = cli("translate", "eval", "--checkpoint", out, "--data", multi30k_slice, "--split", "val",
                            "--beam", "1", "--json", "--threads", "1")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["split"] == "val" and result["sentences"] == 60 and 0 <= result["bleu"] <= 100
    code, stdout, err = cli("translate", "translate", "--checkpoint", out, "--beam", "2", "Ein Hund läuft.",
                            "Zwei ☃ Männer 漢字.", "--threads", "1")  # unseen characters become <unk>
    assert code == 0, err
    assert len(stdout.split("\n")) == 3  # two lines and the final newline
    monkeypatch.setattr(sys, "stdin", io.StringIO("Ein Hund.\n\nEine Frau.\n"))
    code, stdout, err = cli("translate", "translate", "--checkpoint", out, "--beam", "1", "--threads", "1")
    assert code == 1 and err == "quasirnn translate translate: error: line 2: empty sentence: nothing to translate\n"
    lines = stdout.split("\n")
    assert len(lines) == 4 and lines[1] == ""  # an empty line in its place; the others are translated
    code, alone, err = cli("translate", "translate", "--checkpoint", out, "--beam", "1", "--threads", "1", "Ein Hund.")
    assert code == 0 and alone.count("\n") == 1, err
    monkeypatch.setattr(sys, "stdin", io.StringIO("Ein Hund.\n"))
    code, dash, err = cli("translate", "translate", "--checkpoint", out, "--beam", "1", "--threads", "1", "-")
    assert code == 0 and dash == alone, err  # "-" reads stdin


def test_data_errors_are_one_line_messages(tmp_path, cli, multi30k_slice):
    data = tmp_path / "bad"
    data.mkdir()
    for split in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en"):
            (data / f"{split}.{lang}").write_bytes(gzip.decompress((multi30k_slice / f"{split}.{lang}.gz").read_bytes()))
    (data / "train.en").write_text("\n".join((data / "train.en").read_text().split("\n")[:-5]) + "\n")
    code, _, err = cli("translate", "train", "--data", data, "--out", tmp_path / "o", *TINY, "--max-steps", "1")
    assert code == 2 and "train.de has 400 lines" in err and "train.en has 396" in err
    assert err.startswith("quasirnn: error:") and "Traceback" not in err
    code, _, err = cli("translate", "train", "--data", tmp_path / "nowhere", "--out", tmp_path / "o", *TINY)
    assert code == 2 and "nowhere" in err
    code, _, err = cli("translate", "eval", "--checkpoint", tmp_path / "missing")
    assert code == 2 and "no checkpoint" in err
    code, _, err = cli("translate", "train", "--data", multi30k_slice, "--out", tmp_path / "o", *TINY,
                       "--encoder-window", "6,2,2")
    assert code == 2 and "--encoder-window lists 3 widths for 2 layers" in err


def test_run_errors_are_one_line_messages(tmp_path, cli, multi30k_slice):
    def error(*argv):
        code, stdout, err = cli("translate", "train", *argv)
        assert code == 2 and err.startswith("quasirnn: error: ") and err.count("\n") == 1, err
        return err

    (tmp_path / "empty").mkdir()
    assert f"nothing to resume, {tmp_path / 'empty'} holds no checkpoint.pt" in error("--resume", tmp_path / "empty")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert f"cannot write the run to {blocker / 'run'}" in error("--data", multi30k_slice, *TINY, "--out",
                                                                 blocker / "run")
    if not torch.cuda.is_available():
        assert "--device cuda: CUDA is not available" in error("--data", multi30k_slice, *TINY, "--device", "cuda",
                                                               "--out", tmp_path / "o")


def test_a_checkpoint_of_the_old_training_loop_resumes(tiny_run, cli, tmp_path):
    """translate train had its own loop before the shared trainer; its checkpoints (counters,
    history, one RNG state, no scheduler) go on from their step."""
    cell, out, (code, _, err) = tiny_run
    assert code == 0, err
    new = torch.load(out / "checkpoint.pt", weights_only=True)
    old_config = {k: v for k, v in new["config"].items()
                  if k not in ("optimizer", "wdecay", "checkpoint_every", "log_interval", "lr_patience")}
    counters = {"epoch": 0, "batch_in_epoch": 3, "step": 3, "train_s": 1.5, "train_chars": 4000, "best_bleu": 0.0}
    history = [{"epoch": 0, "step": 3, "train_s": 1.5, "train_loss": 4.0, "val_bleu": 0.0, "lr": 0.002}]
    old = tmp_path / "old"
    old.mkdir()
    save_checkpoint(old / "checkpoint.pt", "translator", old_config, model=new["model"], best_model=new["best_model"],
                    optimizer=new["optimizer"], src_vocab=new["src_vocab"], tgt_vocab=new["tgt_vocab"],
                    counters=counters, history=history, rng=new["rng"])
    code, stdout, err = cli("translate", "train", "--resume", old, "--max-steps", "5", "--final-beam", "1", "--quiet")
    assert code == 0, err
    m = read_metrics(old)
    assert m["steps"] == 5 and m["train_time_s"] > 1.5 and m["train_tokens"] > 4000 and m["best_step"] in (3, 5)
    assert m["config"]["lr_patience"] == 0  # the old loop decayed without patience; a resume keeps that
    assert [r["step"] for r in map(json.loads, (old / "log.jsonl").read_text().splitlines()) if r["split"] == "train"] \
        == [4, 5]


def test_default_windows_follow_the_layer_count():
    from quasirnn.experiments.translation import TranslateConfig

    config = TranslateConfig().resolved().model
    assert config.num_layers == 4 and config.hidden_size == 320  # the paper's §3.3 model
    assert config.encoder_window == [6, 2, 2, 2] and config.decoder_window == [2, 1, 1, 1]
    given = TranslateConfig().replace(num_layers=3, encoder_window=5, decoder_window=[3, 2, 1]).resolved().model
    assert (given.num_layers, given.encoder_window, given.decoder_window) == (3, [5, 5, 5], [3, 2, 1])  # an int: every layer
