"""Checkpoints written by earlier versions (tests/fixtures/checkpoints, made by make_checkpoints.py
there) still evaluate to what they evaluated to then, and resume.

They were trained when an int ``--window`` meant the first layer only (the others 1), with the
configuration stored as the dict of that time: a checkpoint loads only if its config still builds
the same layer widths (the convolution weights would not fit otherwise)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
_spec = importlib.util.spec_from_file_location("fixture_corpora", FIXTURES / "corpora.py")
corpora = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpora)

COMMANDS = ("lm", "classify", "translate")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return corpora.write_corpora(tmp_path_factory.mktemp("fixture_corpora"))


def _old_run(command: str, tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / f"old-{command}"
    out.mkdir()
    shutil.copy(FIXTURES / command / "checkpoint.pt", out / "checkpoint.pt")
    return out, json.loads((FIXTURES / command / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("command", COMMANDS)
def test_an_old_checkpoint_evaluates_as_it_did(command, cli, data, tmp_path):
    out, expected = _old_run(command, tmp_path)
    code, stdout, err = cli(command, "eval", "--checkpoint", out, "--data", data[command], *expected["eval"],
                            "--json", "--threads", "1")
    assert code == 0, err
    result, then = json.loads(stdout), expected["result"]
    for key in ("ppl", "loss", "accuracy", "bleu", "tokens", "reviews", "sentences"):
        if key in then:
            assert result[key] == pytest.approx(then[key], rel=1e-4, abs=1e-6), key
    if command == "translate":
        code, stdout, err = cli("translate", "translate", "--checkpoint", out, "--beam", "1", "--threads", "1",
                                "Ein hund läuft.", "Die katze.")
        assert code == 0, err
        assert stdout.splitlines() == expected["translations"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_old_checkpoint_resumes(command, cli, data, tmp_path):
    out, _ = _old_run(command, tmp_path)
    code, stdout, err = cli(command, "train", "--resume", out, "--data", data[command], "--max-steps", "3",
                            "--threads", "1", "--quiet")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["stop_reason"] == "max_steps" and metrics["finished"] is True
    train_steps = [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
                   if r["split"] == "train"]
    assert train_steps == [3]
