"""Reading runs' curves from log.jsonl / metrics.json and drawing them (:mod:`quasirnn.training.plots`)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib")

from quasirnn.errors import ConfigError  # noqa: E402  (after the skip)
from quasirnn.training.plots import draw_curves, read_run, read_runs  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_reads_translate_runs_of_the_old_loop(tmp_path):
    """metrics.json of translate's own loop (before the shared trainer): no kind, no log.jsonl, an
    epoch history with train_s, train_loss and val_bleu."""
    history = [{"epoch": e, "step": 100 * (e + 1), "train_s": 60.0 * (e + 1), "train_loss": 2.0 - e / 10,
                "val_bleu": 5.0 + e, "lr": 0.002, "chars_per_s": 1e4} for e in range(3)]
    (tmp_path / "metrics.json").write_text(json.dumps({"val_bleu": 7.5, "params": 1_000_000, "history": history,
                                                       "config": {"cell": "qrnn", "num_layers": 2, "hidden_size": 256}}))
    run = read_run(tmp_path)
    assert run.kind == "translator" and run.label == "qrnn 2×256 (1.0M)"
    assert [(r["train_time_s"], r["bleu"]) for r in run.valid] == [(60.0, 5.0), (120.0, 6.0), (180.0, 7.0)]
    assert [r["loss"] for r in run.train] == [2.0, 1.9, 1.8]
    draw_curves(read_runs([tmp_path]), tmp_path / "old.png")
    assert (tmp_path / "old.png").read_bytes().startswith(PNG)


def _metrics_run(directory, kind, history):
    directory.mkdir()
    (directory / "metrics.json").write_text(json.dumps({"kind": kind, "params": 4_000, "history": history,
                                                        "config": {"cell": "qrnn", "num_layers": 2, "hidden_size": 8}}))
    return directory


def test_read_runs_names_look_alike_runs_by_directory_and_refuses_mixed_kinds(tmp_path):
    history = [{"epoch": 1, "step": 5, "val_accuracy": 0.61, "train_time_s": 3.0}]
    a = _metrics_run(tmp_path / "a", "classifier", history)
    b = _metrics_run(tmp_path / "b", "classifier", history)
    assert [run.label for run in read_runs([a, b])] == ["qrnn 2×8 (4k) [a]", "qrnn 2×8 (4k) [b]"]
    lm = _metrics_run(tmp_path / "lm", "language_model", [{"epoch": 1, "step": 5, "val_ppl": 300.0}])
    with pytest.raises(ConfigError, match=r"different kinds \(classifier, language_model\)"):
        read_runs([a, lm])
