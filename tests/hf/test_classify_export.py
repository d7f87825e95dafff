"""``quasirnn classify export --hf DIR``: the text-classification pipeline gives ``classify predict``'s
labels and probabilities; padding never changes a review's logits."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline  # noqa: E402

import quasirnn.hf  # noqa: E402,F401
from quasirnn.data.imdb import tokenize  # noqa: E402

TEXTS = ["A great and wonderful film!", "Boring, dull plot.<br />I hated it", "the actors was",
         "Superb superb superb loved it and the plot and the actors and a movie was great great great!"]


@pytest.fixture(scope="module")
def folder(classify_run, cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "hf"
    code, stdout, err = cli("classify", "export", "--checkpoint", classify_run, "--hf", out)
    assert code == 0, err
    return out


def test_tokenizer_splits_reviews_as_training_did(folder, classify_run):
    from quasirnn.data.imdb import encode
    from quasirnn.experiments.classification import load_for_inference
    from quasirnn.training.launch import checkpoint_path

    _, vocab, _ = load_for_inference(checkpoint_path(classify_run), torch.device("cpu"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in TEXTS + ["Don't <BR/>miss it: 10/10 -- naïve's"]:
        assert tokenizer(text)["input_ids"] == encode(tokenize(text), vocab).tolist()


def test_pipeline_gives_classify_predicts_labels(folder, classify_run, cli):
    classify = pipeline("text-classification", model=str(folder), device="cpu")
    results = classify(TEXTS)
    code, out, err = cli("classify", "predict", "--checkpoint", classify_run, "--json", *TEXTS)
    assert code == 0, err
    expected = [json.loads(line) for line in out.splitlines()]
    assert [r["label"] for r in results] == [e["label"] for e in expected]
    for result, e in zip(results, expected):
        assert result["score"] == pytest.approx(e["probability"], abs=1e-5)
    assert {r["label"] for r in results} <= {"negative", "positive"}


def test_padding_does_not_change_a_reviews_logits(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    batch = tokenizer(TEXTS[:3], padding=True, return_tensors="pt")
    together = model(**batch).logits
    alone = torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in TEXTS[:3]])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_round_trip_is_exact(folder, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
