"""``quasirnn plot``: one figure with the training and validation curves of several runs."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("matplotlib")

from quasirnn.errors import ConfigError  # noqa: E402  (after the skip)
from quasirnn.training.plots import read_run  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(synthetic, tmp_path_factory, tiny, cli):
    """A QRNN and an LSTM language model, two epochs each."""
    root = tmp_path_factory.mktemp("plot_runs")
    for cell in ("qrnn", "lstm"):
        code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--cell", cell, "--epochs", "2",
                           "--out", root / cell)
        assert code == 0, err
    return root


@pytest.mark.parametrize("x", ["time", "step", "epoch"])
def test_plot_writes_a_png_of_several_runs(runs, tmp_path, cli, x):
    out = tmp_path / "figures" / "curves.png"
    code, stdout, err = cli("plot", runs / "qrnn", runs / "lstm", "-o", out, "--x", x)
    assert code == 0, err
    assert stdout == f"wrote {out} (2 runs: qrnn 2×24 (4k), lstm 2×24 (7k))\n"
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # written atomically, nothing else left


def test_without_o_the_figure_goes_beside_the_runs_and_replaces_nothing(runs, tmp_path, cli, monkeypatch):
    first = tmp_path / "qrnn"
    shutil.copytree(runs / "qrnn", first)
    names = []
    for _ in range(3):
        code, stdout, err = cli("plot", first, runs / "lstm")
        assert code == 0, err
        names.append(stdout.split()[1])
    assert names == [str(first / "curves.png"), str(first / "curves-2.png"), str(first / "curves-3.png")]
    assert all((first / name).read_bytes().startswith(PNG) for name in ("curves.png", "curves-2.png", "curves-3.png"))
    assert not (tmp_path / "curves.png").exists()  # the working directory
    (first / "curves-4.png").write_text("mine")
    code, stdout, err = cli("plot", first, "--x", "bogus")  # a usage error reserves no name
    assert code == 2

    def no_matplotlib(*args):
        raise ConfigError("quasirnn plot needs matplotlib")

    monkeypatch.setattr("quasirnn.cli.plot.draw_curves", no_matplotlib)
    code, stdout, err = cli("plot", first)  # a failure leaves no empty reserved file behind
    assert code == 2 and "needs matplotlib" in err
    assert sorted(p.name for p in first.glob("curves*")) == ["curves-2.png", "curves-3.png", "curves-4.png",
                                                             "curves.png"]
    assert (first / "curves-4.png").read_text() == "mine"


def test_plot_reports_a_damaged_log_line(runs, tmp_path, cli):
    run = tmp_path / "damaged"
    shutil.copytree(runs / "qrnn", run)
    lines = (run / "log.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"  # cut, as a crash or an interleaved writer leaves it
    (run / "log.jsonl").write_text("".join(lines))
    code, stdout, err = cli("plot", run, "-o", tmp_path / "c.png")
    assert code == 0 and stdout.startswith(f"wrote {tmp_path / 'c.png'}")
    assert err == f"quasirnn: warning: {run / 'log.jsonl'}: skipped damaged line 3 (not a JSON record)\n"


def test_plot_reads_runs_without_a_step_log(runs, tmp_path, cli):
    """Runs from before log.jsonl: the validation curve comes from metrics.json's history."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text((runs / "qrnn" / "metrics.json").read_text())
    code, stdout, err = cli("plot", old, runs / "lstm", "-o", tmp_path / "c.svg")
    assert code == 0, err
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")


def test_plot_errors_are_one_line(runs, tmp_path, cli):
    def error(*argv):
        code, _, err = cli("plot", *argv)
        assert code == 2 and err.startswith("quasirnn: error: ") and err.count("\n") == 1, err
        return err

    assert f"{tmp_path} is not a training run: it has no metrics.json nor log.jsonl" in error(tmp_path)
    classifier = tmp_path / "classifier"
    classifier.mkdir()
    (classifier / "metrics.json").write_text(json.dumps({"kind": "classifier", "config": {}, "history": [
        {"epoch": 1, "step": 5, "val_accuracy": 0.7, "train_time_s": 1.0}]}))
    assert "different kinds (classifier, language_model)" in error(runs / "qrnn", classifier)
    assert "matplotlib cannot write .xyz files" in error(runs / "qrnn", "-o", tmp_path / "c.xyz")


def test_plot_of_translation_runs(multi30k_slice, tmp_path, cli):
    """Translators: the training loss and the validation BLEU of a QRNN and an LSTM."""
    for cell in ("qrnn", "lstm"):
        code, _, err = cli("translate", "train", "--data", multi30k_slice, "--cell", cell, "--limit", "26",
                           "--val-limit", "10", "--emb-size", "8", "--hidden-size", "8", "--num-layers", "2",
                           "--batch-size", "13", "--final-beam", "1", "--quiet", "--threads", "1", "--epochs", "2",
                           "--out", tmp_path / cell)
        assert code == 0, err
    out = tmp_path / "mt.png"
    code, stdout, err = cli("plot", tmp_path / "qrnn", tmp_path / "lstm", "-o", out, "--x", "epoch")
    assert code == 0, err
    assert stdout.startswith(f"wrote {out} (2 runs: qrnn 2×8 (") and ", lstm 2×8 (" in stdout
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 10_000
    run = read_run(tmp_path / "qrnn")
    assert run.kind == "translator" and len(run.train) == 4 and [r["bleu"] for r in run.valid] == \
        [h["val_bleu"] for h in json.loads((tmp_path / "qrnn" / "metrics.json").read_text())["history"]]
