"""Document classification as a training :class:`~quasirnn.training.task.Task` (``quasirnn classify train``).

Each epoch's batches are length-bucketed (:func:`quasirnn.data.batching.length_batches`) in an
order that depends only on (seed, epoch), so a resumed run can skip to its position.
``batch_size`` is the **global** batch: in a distributed run every rank draws the same order
and takes every N-th review of each batch (``index[rank::N]``, a DistributedSampler-like
shard that keeps the lengths of a bucket together); a rank whose share of a short last batch is
empty runs one review with weight 0 so that it still joins the gradient averaging. Validation
and test split the evaluation batches between the ranks and sum the counts.

The task keeps the weights of the best validation accuracy; the final test uses them.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F

from quasirnn.data.batching import length_batches, pad_batch
from quasirnn.data.imdb import EncodedSplit, ImdbData
from quasirnn.models import TextClassifier, evaluate_classifier
from quasirnn.training.distributed import Distributed
from quasirnn.training.progress import Progress
from quasirnn.training.runlog import finite
from quasirnn.training.task import StepOutput, Task, Validation

__all__ = ["ClassificationTask", "classifier_loss", "epoch_generator"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of an epoch's batch order: it depends only on (seed, epoch), so a resumed run can skip ahead."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def classifier_loss(model: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor,
                    labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of a padded batch and its number of correct predictions.

    Args:
        model: a :class:`TextClassifier` (or its DistributedDataParallel wrapper).
        ids: LongTensor (T, B) right-padded; lengths (B,); labels LongTensor (B,).

    Returns:
        (scalar loss tensor in nats per review, attached to the graph; correct predictions, a 0-d LongTensor).
    """
    logits = model(ids, lengths)  # (B, C)
    return F.cross_entropy(logits, labels), (logits.argmax(-1) == labels).sum()


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class ClassificationTask(Task):
    """Trains a :class:`TextClassifier` on encoded IMDb splits (see the module docstring).

    Args:
        model: the classifier, on ``dist.device``.
        data: the encoded train, validation and test reviews with their vocabulary.
        config: ``batch_size``, ``eval_batch_size`` and ``seed`` (see :class:`quasirnn.cli.classify.ClassifyConfig`).
        dist: this rank's place in the run.
    """

    kind = "classifier"
    metric = "accuracy"
    mode = "max"

    def __init__(self, model: TextClassifier, data: ImdbData, config: dict[str, Any], dist: Distributed) -> None:
        self.model, self.data, self.dist = model, data, dist
        self.batch_size, self.eval_batch_size, self.seed = config["batch_size"], config["eval_batch_size"], config["seed"]
        self.train_lengths = data.train.lengths
        self.best_accuracy = -1.0  # over every validation: selects the weights that are tested
        self.best_step = -1
        self.best_state: Optional[dict[str, torch.Tensor]] = None
        self.val_accuracy = self.val_loss = math.nan

    # ------------------------------------------------------------------ training

    def batches_per_epoch(self) -> int:
        return self.data.train.num_batches(self.batch_size)

    def batch_number(self, position: int) -> int:
        return position

    def epoch_fraction(self, position: int) -> float:
        return position / max(1, self.batches_per_epoch())

    def _share(self, index: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """This rank's reviews of a global batch, and whether they count (False: a weight-0 stand-in)."""
        if not self.dist.enabled:
            return index, True
        mine = index[self.dist.rank :: self.dist.world_size]
        return (mine, True) if len(mine) else (index[:1], False)

    def train_batches(self, epoch: int, position: int) -> Iterator[tuple[int, Any]]:
        split, device = self.data.train, self.dist.device
        order = length_batches(self.train_lengths, self.batch_size, shuffle=True,
                               generator=epoch_generator(self.seed, epoch))
        for number, index in enumerate(order[position:], start=position + 1):
            mine, counts = self._share(index)
            ids, lengths = pad_batch([split.ids[i] for i in mine.tolist()])
            yield number, (ids.to(device), lengths, split.labels[mine].to(device), len(index), counts)

    def loss(self, model: torch.nn.Module, batch: Any) -> StepOutput:
        ids, lengths, labels, global_size, counts = batch
        loss, correct = classifier_loss(model, ids, lengths, labels)
        n = labels.numel() if counts else 0
        scale = n * self.dist.world_size / global_size  # 1 in one process
        stats = {"examples": n, "correct": correct if counts else 0, "tokens": int(lengths.sum()) if counts else 0}
        return StepOutput(loss * scale if scale != 1.0 else loss, loss.detach(), n, stats)

    def step_values(self, mean_loss: float, stats: dict[str, float]) -> dict[str, Any]:
        examples = stats.get("examples", 0)
        return {"accuracy": stats.get("correct", 0) / examples if examples else None}

    def window_text(self, mean_loss: float, stats: dict[str, float], seconds: float) -> tuple[dict[str, str], str]:
        examples = stats.get("examples", 0)
        accuracy = stats.get("correct", 0) / examples if examples else math.nan
        rate = examples / seconds if seconds > 0 else 0.0
        return ({"loss": f"{mean_loss:.3f}", "acc": f"{accuracy:.3f}", "ex_s": f"{rate:,.1f}"},
                f"loss {mean_loss:.3f} | train acc {accuracy:.3f} | {rate:,.1f} reviews/s")

    def rate_text(self, progress: Progress) -> str:
        return f"{self._examples_per_s(progress) or 0.0:,.1f} reviews/s"

    @staticmethod
    def _examples_per_s(progress: Progress) -> Optional[float]:
        return progress.train_examples / progress.train_time_s if progress.train_time_s else None

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, split: EncodedSplit) -> tuple[float, float]:
        """(accuracy, mean loss) of the current weights over all ranks' share of ``split``'s batches."""
        device = self.dist.device
        batches = split.batches(self.eval_batch_size)
        if self.dist.enabled:
            batches = (b for i, b in enumerate(batches) if i % self.dist.world_size == self.dist.rank)
        accuracy, loss, count = evaluate_classifier(
            self.model, ((ids.to(device), lengths, labels.to(device)) for ids, lengths, labels in batches))
        if not self.dist.enabled:
            return accuracy, loss
        correct, total, count = self.dist.sum([accuracy * count if count else 0.0, loss * count if count else 0.0, count])
        return (correct / count, total / count) if count else (math.nan, math.nan)

    def validate(self, step: int) -> Validation:
        """Validation accuracy of the current weights; keeps them when they are the best so far."""
        self.val_accuracy, self.val_loss = self._evaluate(self.data.val)
        if not self.val_accuracy <= self.best_accuracy:  # NaN (no validation set): the latest weights
            self.best_accuracy, self.best_step = self.val_accuracy, step
            self.best_state = _state_copy(self.model)
        return Validation(self.val_accuracy, {"val_accuracy": finite(self.val_accuracy), "val_loss": finite(self.val_loss)},
                          {"loss": self.val_loss, "accuracy": self.val_accuracy}, f"val accuracy {self.val_accuracy:.4f}")

    def test(self) -> tuple[float, float]:
        """(accuracy, loss) on the test reviews with the best-validation weights (the last ones stay in the model)."""
        last = _state_copy(self.model)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        try:
            return self._evaluate(self.data.test)
        finally:
            self.model.load_state_dict(last)

    def test_log(self, result: tuple[float, float]) -> dict[str, Any]:
        return {"loss": result[1], "accuracy": result[0]}

    # ------------------------------------------------------------------ checkpoint and metrics

    def state(self, progress: Progress) -> dict[str, Any]:
        return {"vocab": list(self.data.vocab.itos),
                "best_model": self.best_state if self.best_state is not None else _state_copy(self.model),
                "best": {"val_accuracy": self.best_accuracy, "step": self.best_step}}

    def load_state(self, checkpoint: dict[str, Any], progress: Progress) -> None:
        best = checkpoint.get("best") or {"val_accuracy": checkpoint["progress"].get("best_val_accuracy", -1.0),
                                          "step": checkpoint["progress"].get("best_step", -1)}  # older checkpoints
        self.best_accuracy, self.best_step = best["val_accuracy"], best["step"]
        self.best_state = checkpoint["best_model"]

    def metrics(self, progress: Progress, test: Optional[tuple[float, float]]) -> dict[str, Any]:
        data = self.data
        return {
            "val_accuracy": finite(self.best_accuracy) if self.best_step >= 0 else None,
            "test_accuracy": None if test is None else finite(test[0]),
            "test_loss": None if test is None else finite(test[1]),
            "last_val_accuracy": finite(self.val_accuracy),
            "last_val_loss": finite(self.val_loss),
            "best_step": self.best_step if self.best_step >= 0 else None,
            "train_examples_per_s": self._examples_per_s(progress),
            "vocab_size": len(data.vocab),
            "reviews": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "train_examples": progress.train_examples,
        }

    def done_text(self, progress: Progress, test: tuple[float, float]) -> str:
        return f"val accuracy {self.best_accuracy:.4f} | test accuracy {test[0]:.4f} | {self.rate_text(progress)}"
