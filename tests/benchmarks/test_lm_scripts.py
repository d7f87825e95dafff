"""The language-model benchmark scripts run and print their tables (tiny sizes; timings not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from quasirnn.data.synthetic import write_zipf_corpus
from quasirnn.training.precision import cpu_has_bf16

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, env: dict | None = None) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **(env or {}))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_corpus_read_prints_first_and_cached_reads(tmp_path):
    out = _run("corpus_read.py", "--tokens", "20000", "--vocab-size", "500", "--dir", str(tmp_path / "c"))
    assert re.search(r"corpus: 20,80\d training tokens", out)
    assert re.search(r"^\| first \(stream \+ encode \+ write cache\) \| [\d.]+ \| [\d,]+ \| -?[\d,]+ \|$", out, re.M)
    assert re.search(r"^\| second \(cache\) \| [\d.]+ \| [\d,]+ \| -?[\d,]+ \|$", out, re.M)


def test_imdb_corpus_writes_the_three_splits(real_imdb, tmp_path):
    out = _run("imdb_corpus.py", "--imdb", str(real_imdb), "--out", str(tmp_path / "lm"), "--limit", "30",
               "--val-size", "10", "--vocab-size", "300")
    for split, lines in (("train", 50), ("valid", 10), ("test", 60)):
        assert len((tmp_path / "lm" / f"{split}.txt").read_text().splitlines()) == lines
        assert re.search(rf"^\| {split} \| [\d,]+ \| {lines} \|$", out, re.M)
    words = set((tmp_path / "lm" / "train.txt").read_text().split())
    assert len(words) == 299 and "<unk>" in words  # 298 words and <unk>; <eos> is added by the reader


def test_softmax_speed_prints_every_variant(tmp_path):
    for split, n in (("train", 20_000), ("valid", 2_000), ("test", 2_000)):
        write_zipf_corpus(tmp_path / f"{split}.txt", n, vocab_size=3_000, seed=len(split))
    with open(tmp_path / "train.txt", "a") as f:
        f.write("<unk>\n")  # valid/test words unseen in train map to it
    out = _run("softmax_speed.py", "--data", str(tmp_path), "--steps", "1", "--warmup", "0", "--emb-size", "8",
               "--hidden-size", "8", "--num-layers", "1", "--bptt", "5", "--batch-size", "2")
    rows = re.findall(r"^\| (qrnn|lstm) \| (full|adaptive tied|adaptive untied \(torch\)) \| ([\d,]+|-) \| "
                      r"(32|bf16) \| [\d.]+ M \| [\d,]+ \| [\d,]+ \| [\d.]+ \| [\d.]+x \|$", out, re.M)
    assert [(c, s) for c, s, _, _ in rows] == [("qrnn", "full"), ("qrnn", "adaptive tied"),
                                              ("qrnn", "adaptive untied (torch)"), ("lstm", "full"),
                                              ("lstm", "adaptive tied")]
    # --precision auto: each cell in lm train's default (bf16 only for the qrnn, and only where the CPU has it)
    qrnn_default = "bf16" if cpu_has_bf16() else "32"
    assert [p for c, _, _, p in rows] == [qrnn_default] * 3 + ["32"] * 2
    assert "qrnn-adaptive / lstm-adaptive:" in out and "(goal >= 2.5x)" in out
