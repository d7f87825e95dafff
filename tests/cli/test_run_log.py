"""``OUT/log.jsonl``: one record per training step, one per validation, one for the test, for every train command."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_language_model_log(synthetic, tmp_path, cli, tiny):
    code, _, err = cli("lm", "train", "--data", synthetic, *tiny, "--epochs", "2", "--out", tmp_path / "r")
    assert code == 0, err
    records, m = read_log(tmp_path / "r"), json.loads((tmp_path / "r" / "metrics.json").read_text())
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, m["steps"] + 1))
    assert set(train[0]) == {"split", "step", "epoch", "loss", "ppl", "lr", "tokens", "tokens_per_s", "train_time_s",
                             "time"}
    for r in train:
        assert r["ppl"] == pytest.approx(math.exp(r["loss"])) and r["lr"] == 0.01 and r["tokens_per_s"] > 0
    assert sum(r["tokens"] for r in train) == m["train_tokens"]
    assert train[-1]["train_time_s"] == pytest.approx(m["train_time_s"], abs=1e-3)
    assert all(a["epoch"] < b["epoch"] for a, b in zip(train, train[1:])) and train[-1]["epoch"] == 2.0
    valid = [r for r in records if r["split"] == "valid"]
    assert [(r["epoch"], r["step"]) for r in valid] == [(h["epoch"], h["step"]) for h in m["history"]]
    assert [r["ppl"] for r in valid] == pytest.approx([h["val_ppl"] for h in m["history"]])
    (test,) = [r for r in records if r["split"] == "test"]
    assert test["ppl"] == pytest.approx(m["test_ppl"]) and test["step"] == m["steps"]


def test_classifier_log(imdb_slice, tmp_path, cli):
    code, _, err = cli("classify", "train", "--data", imdb_slice, "--limit", "40", "--val-size", "10", "--emb-size", "8",
                       "--hidden-size", "8", "--num-layers", "1", "--max-len", "40", "--batch-size", "10", "--quiet",
                       "--threads", "1", "--epochs", "1", "--out", tmp_path / "c")
    assert code == 0, err
    records = read_log(tmp_path / "c")
    train = [r for r in records if r["split"] == "train"]
    assert len(train) == 7 and all(0 <= r["accuracy"] <= 1 and "ppl" not in r for r in train)  # 70 reviews
    assert [r["split"] for r in records[-2:]] == ["valid", "test"]
    m = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert records[-1]["accuracy"] == pytest.approx(m["test_accuracy"])


def test_translator_log(multi30k_slice, tmp_path, cli):
    code, _, err = cli("translate", "train", "--data", multi30k_slice, "--limit", "26", "--val-limit", "10",
                       "--emb-size", "8", "--hidden-size", "8", "--batch-size", "13", "--final-beam", "2", "--quiet",
                       "--threads", "1", "--epochs", "2", "--out", tmp_path / "t")
    assert code == 0, err
    records, m = read_log(tmp_path / "t"), json.loads((tmp_path / "t" / "metrics.json").read_text())
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]  # 26 pairs in batches of 13, two epochs
    assert set(train[0]) == {"split", "step", "epoch", "loss", "lr", "tokens", "tokens_per_s", "train_time_s", "time"}
    assert all(r["loss"] > 0 and r["tokens_per_s"] > 0 for r in train)
    de, en = ([line.rstrip("\n") for line in gzip.open(multi30k_slice / f"train.{lang}.gz", "rt", encoding="utf-8")][:26]
              for lang in ("de", "en"))
    chars = sum(map(len, de)) + sum(len(s) + 1 for s in en)  # source and target characters, <eos> included
    assert sum(r["tokens"] for r in train) == m["train_tokens"] == 2 * chars and m["train_pairs"] == 2 * 26
    valid = [r for r in records if r["split"] == "valid"]
    assert [(r["epoch"], r["step"], r["bleu"]) for r in valid] == [(h["epoch"], h["step"], h["val_bleu"])
                                                                   for h in m["history"]] and len(valid) == 2
    (test,) = [r for r in records if r["split"] == "test"]
    assert (test["bleu"], test["val_bleu"], test["test_bleu_greedy"]) == (m["test_bleu"], m["val_bleu"],
                                                                          m["test_bleu_greedy"])
