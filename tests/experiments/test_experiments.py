"""What every experiment gives the training machinery."""

from __future__ import annotations

import pytest

from quasirnn.experiments.classification import EXPERIMENT as CLASSIFY
from quasirnn.experiments.language_model import EXPERIMENT as LM
from quasirnn.experiments.translation import EXPERIMENT as TRANSLATE
from quasirnn.ops import compile_seconds


@pytest.mark.parametrize("experiment", [LM, CLASSIFY, TRANSLATE], ids=lambda e: e.name)
def test_kernel_compilation_is_left_out_of_every_experiments_training_time(experiment):
    """The trainer leaves out what this clock advances during a step (tests/training/test_trainer.py)."""
    assert experiment.excluded_seconds is compile_seconds


def test_classify_predict_takes_raw_text_and_tokenizes_it_as_training_did():
    import torch

    from quasirnn.data.imdb import build_vocab, encode, tokenize
    from quasirnn.errors import DataError
    from quasirnn.experiments.classification import predict_review, review_problem
    from quasirnn.models import TextClassifier

    torch.manual_seed(0)
    vocab = build_vocab([["a", "fine", "film"], ["a", "dull", "plot"]])
    model = TextClassifier(len(vocab), emb_size=8, hidden_size=6, num_layers=1).eval()
    text = "A <br />FINE film, a DULL plot!"
    result = predict_review(model, vocab, 4, text, torch.device("cpu"))
    ids = encode(tokenize(text), vocab, 4)  # a fine film ,
    with torch.no_grad():
        expected = torch.softmax(model(ids[:, None], torch.tensor([4])), -1)[0]
    assert result["probabilities"] == {"negative": float(expected[0]), "positive": float(expected[1])}
    assert review_problem(" \t ") == "no word to classify" and review_problem("ok") is None
    with pytest.raises(DataError, match="no word to classify"):
        predict_review(model, vocab, 4, " \t ", torch.device("cpu"))


def test_the_classifier_evaluation_matches_a_manual_computation_and_sums_over_the_ranks():
    import math

    import torch
    import torch.nn.functional as F

    from quasirnn.data.imdb import EncodedSplit
    from quasirnn.experiments.classification import evaluate
    from quasirnn.models import TextClassifier

    torch.manual_seed(0)
    split = EncodedSplit([torch.randint(2, 30, (n,)) for n in (5, 3, 8, 1, 4)], torch.tensor([1, 0, 1, 1, 0]))
    model = TextClassifier(30, emb_size=8, hidden_size=6, num_layers=2).train()
    accuracy, loss, count = evaluate(model, split, 2, torch.device("cpu"))
    assert model.training and count == 5  # mode restored
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(ids[:, None], torch.tensor([len(ids)])) for ids in split.ids])
    assert math.isclose(loss, F.cross_entropy(logits, split.labels).item(), rel_tol=1e-5)
    assert accuracy == (logits.argmax(-1) == split.labels).sum().item() / 5

    class Rank:
        """Rank 1 of 2 whose partner saw batches as large as this rank's."""

        enabled, rank, world_size = True, 1, 2

        def sum(self, values):
            self.mine = values
            return [2 * v for v in values]

    rank = Rank()
    evaluate(model, split, 2, torch.device("cpu"), rank)
    assert rank.mine[2] == 2  # of the batches of lengths [8, 5], [4, 3], [1], rank 1 takes the second
