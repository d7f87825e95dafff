"""A tiny trained ``lm`` run for the export tests (seconds of training on a synthetic corpus)."""

from __future__ import annotations

import random

import pytest


def _corpus(directory):
    """Sentences that walk a ring of 20 words (some <unk>), as PTB files."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(20)]

    def sentence() -> str:
        start = rng.randrange(20)
        tokens = [words[(start + k) % 20] for k in range(rng.randint(3, 8))]
        if rng.random() < 0.2:
            tokens[rng.randrange(len(tokens))] = "<unk>"
        return " " + " ".join(tokens) + " "

    directory.mkdir(parents=True)
    for split, lines in (("train", 300), ("valid", 40), ("test", 40)):
        (directory / f"ptb.{split}.txt").write_text("\n".join(sentence() for _ in range(lines)) + "\n")
    return directory


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory, cli):
    """The output directory of a 2-layer qrnn language model trained for 2 epochs."""
    root = tmp_path_factory.mktemp("hf-run")
    out = root / "run"
    code, _, err = cli("lm", "train", "--data", _corpus(root / "data"), "--out", out, "--emb-size", "16",
                       "--hidden-size", "24", "--num-layers", "2", "--bptt", "10", "--batch-size", "8",
                       "--eval-batch-size", "4", "--lr", "0.01", "--epochs", "2", "--quiet")
    assert code == 0, err
    return out


def _reviews(root):
    """An aclImdb/ folder of short synthetic reviews: positive ones praise, negative ones complain."""
    rng = random.Random(1)
    good, bad = ["great", "superb", "loved", "wonderful"], ["awful", "boring", "hated", "dull"]
    filler = ["the", "film", "plot", "actors", "was", "and", "a", "it", "movie", "!", ","]
    for split in ("train", "test"):
        for label, words in (("pos", good), ("neg", bad)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(40):
                text = [rng.choice(filler + words) for _ in range(rng.randint(4, 14))]
                (folder / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(" ".join(text).capitalize() + ".<br />")
    return root


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory, cli):
    """The output directory of a small dense QRNN classifier trained for 2 epochs on synthetic reviews."""
    root = tmp_path_factory.mktemp("hf-classify")
    out = root / "run"
    code, _, err = cli("classify", "train", "--data", _reviews(root / "aclImdb"), "--out", out, "--emb-size", "8",
                       "--hidden-size", "8", "--num-layers", "2", "--max-len", "10", "--val-size", "10",
                       "--batch-size", "10", "--lr", "0.01", "--epochs", "2", "--threads", "1", "--quiet")
    assert code == 0, err
    return out
