"""Document classification on IMDb (QRNN §3.1; ``quasirnn classify``): the configuration
(:class:`ClassifyConfig`) and its model section (:class:`ClassifierOptions`), the model builder,
data resolution, the training task, the evaluation (:func:`evaluate`, what validation, test and
:func:`evaluate_checkpoint` run) and inference (:func:`predict_review`).

Each epoch's batches are length-bucketed (:func:`quasirnn.data.batching.length_batches`) in an
order that depends only on (seed, epoch), so a resumed run can skip to its position.
``batch_size`` is the **global** batch: in a distributed run every rank draws the same order
and takes its share of each batch (:meth:`quasirnn.training.Distributed.batch_share`, which keeps
the lengths of a bucket together). Validation and test split the evaluation batches between the
ranks and sum the counts.

The task keeps the weights of the best validation accuracy; the final test uses them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch
import torch.nn.functional as F

from quasirnn.data import Vocabulary
from quasirnn.data.batching import length_batches, pad_batch
from quasirnn.data.imdb import LABELS, EncodedSplit, ImdbData, encode, load_imdb, tokenize
from quasirnn.data.paths import DATA_ENV, default_data_dirs
from quasirnn.errors import ConfigError, DataError
from quasirnn.experiments.model_options import (DROPOUTE_HELP, ZONEOUT_HELP, RecurrentModelOptions, option_errors,
                                                window_help)
from quasirnn.models import CELLS, TextClassifier
from quasirnn.models.classifier import SEQUENCE_POOLINGS
from quasirnn.models.paper_windows import IMDB_WINDOWS
from quasirnn.ops import compile_seconds
from quasirnn.training.config import Optimisation, RunOptions, TrainingConfig, fixed, inherited, section
from quasirnn.training.options import (DATA, EVAL_BATCH_HELP, MODEL, OPTIMISATION, positive_int, probability,
                                       window_list)
from quasirnn.training.distributed import Distributed
from quasirnn.training.launch import Experiment, load_run, trained_model
from quasirnn.training.progress import Progress
from quasirnn.training.runlog import finite
from quasirnn.training.task import BestWeights, StepOutput, Task, Validation

__all__ = ["EXPERIMENT", "ClassificationTask", "ClassifierOptions", "ClassifyConfig", "KIND", "build_classifier",
           "classifier_loss", "data_path", "epoch_generator", "evaluate", "evaluate_checkpoint", "load_for_inference",
           "make_task", "predict_review", "review_problem"]

KIND = "classifier"


@dataclass
class ClassifierOptions(RecurrentModelOptions):
    """The arguments of the :class:`~quasirnn.models.TextClassifier` a ``classify`` run trains (its
    ``model`` section; :func:`build_classifier` builds it, and the model checks them).

    The defaults: a densely connected 4-layer QRNN with embedding 128 and hidden 128 (windows
    :data:`~quasirnn.models.paper_windows.IMDB_WINDOWS`: 2 in the first layer, 1 above, when
    ``window`` is None; an int is every layer's width), masked mean pooling, dropout 0.3
    between layers and on the pooled features. A run stores the windows its model was built with.

    Example::

        >>> build_classifier(ClassifierOptions(num_layers=2, window=3), 10).windows
        (3, 3)
        >>> build_classifier(ClassifierOptions(num_layers=2, window=[3, 1, 1]), 10)
        Traceback (most recent call last):
        quasirnn.errors.ConfigError: --window lists 3 widths for 2 layers; give one width per layer, or one number for all
    """

    cell: str = fixed("qrnn", "recurrent layer (default: {default})", choices=CELLS, group=MODEL)
    emb_size: int = fixed(128, "embedding size E (default: {default})", positive_int, group=MODEL)
    hidden_size: int = fixed(128, "hidden size H of every layer (default: {default})", positive_int, group=MODEL)
    num_layers: int = fixed(4, "recurrent layers (default: {default})", positive_int, group=MODEL)
    window: Union[None, int, list[int]] = fixed(None, window_help(IMDB_WINDOWS), window_list, group=MODEL)
    zoneout: float = fixed(0.0, ZONEOUT_HELP, probability, group=MODEL)
    dropout: float = fixed(0.3, "dropout on the pooled features (default: {default})", probability, group=MODEL)
    dropouth: float = fixed(0.3, "dropout between layers (default: {default})", probability, group=MODEL)
    dropouti: float = fixed(0.2, "dropout on the embeddings (default: {default})", probability, group=MODEL)
    dropoute: float = fixed(0.1, DROPOUTE_HELP, probability, group=MODEL)
    dense: bool = fixed(True, "densely connected layers, QRNN §2.1 (default: {default})", group=MODEL)
    pooling: str = fixed("mean", "masked mean over the real steps, or the last real step (default: {default})",
                         choices=SEQUENCE_POOLINGS, group=MODEL)

    window_patterns = {"window": IMDB_WINDOWS}


@dataclass
class ClassifyConfig(TrainingConfig):
    """Configuration of a classification run (stored in the checkpoint as :meth:`to_dict`).

    The defaults are meant to reach ≥ 88% IMDb test accuracy within the 60-minute
    ``time_budget`` on a 2-core CPU without pretrained vectors: vocabulary of the 25,000 most
    frequent training words, reviews cut to 400 tokens (82% of the training reviews are no longer;
    median 201 tokens), the model of :class:`ClassifierOptions`, Adam, float32. ``data``,
    ``max_vocab``, ``max_len``, ``val_size`` and ``limit`` define the data and the vocabulary, so a
    resumed run keeps them (``data`` may move).

    Raises:
        ConfigError: fewer than 3 vocabulary entries, a negative validation size, the checks of the sections.

    Example::

        >>> ClassifyConfig().replace(num_layers=2, window=3).resolved().to_dict()["window"]
        [3, 3]
        >>> ClassifyConfig().replace(max_vocab=2)
        Traceback (most recent call last):
        quasirnn.errors.ConfigError: --max-vocab must be >= 3 (<pad>, <unk> and one word), got 2
    """

    data: Optional[str] = inherited(None, "the IMDb archive (aclImdb_labeled.tar.xz, aclImdb_v1.tar.gz), an "
                                          "extracted aclImdb/ directory, or a directory holding one (default: "
                                          "$QUASIRNN_DATA/imdb)", metavar="PATH", group=DATA)
    max_vocab: int = fixed(25_000, "vocabulary size, <pad> and <unk> included, from the training reviews (default: "
                                   "{default})", positive_int, group=DATA)
    max_len: int = fixed(400, "keep the first T tokens of each review (default: {default})", positive_int, group=DATA)
    val_size: int = fixed(2_500, "training reviews held out for validation, fixed seed (default: {default})", int,
                          group=DATA)
    limit: Optional[int] = fixed(None, "read only the first N reviews of each split and label (quick experiments; "
                                       "default: all)", positive_int, group=DATA)
    model: ClassifierOptions = section(ClassifierOptions)
    batch_size: int = fixed(32, "training batch size (default: {default})", positive_int, group=OPTIMISATION)
    eval_batch_size: int = fixed(100, EVAL_BATCH_HELP, positive_int, group=OPTIMISATION)
    optim: Optimisation = section(Optimisation, lr=1e-3, clip=1.0)
    run: RunOptions = section(RunOptions, epochs=30, time_budget=60.0, log_interval=50)

    validation_metric = "validation accuracy"

    def __post_init__(self) -> None:
        if self.max_vocab < 3:
            raise ConfigError(f"--max-vocab must be >= 3 (<pad>, <unk> and one word), got {self.max_vocab}")
        if self.val_size < 0:
            raise ConfigError(f"--val-size must be >= 0, got {self.val_size}")


def build_classifier(options: ClassifierOptions, vocab_size: int) -> TextClassifier:
    """The :class:`TextClassifier` of the model section ``options`` (its fields are the model's arguments).

    Raises:
        ConfigError: the options do not make a valid model (the model's check, naming the option:
            :func:`~quasirnn.experiments.model_options.option_errors`).
    """
    with option_errors(options):
        return TextClassifier(vocab_size, num_classes=len(LABELS), **dataclasses.asdict(options))


def data_path(given: Optional[str], saved: Optional[str] = None) -> str:
    """The IMDb location: ``given``, else ``saved`` (a run's), else the first of ``$QUASIRNN_DATA/imdb``
    and the user cache's ``imdb/`` that exists (:func:`quasirnn.data.paths.default_data_dirs`),
    else ``$QUASIRNN_DATA/imdb`` when that variable is set.

    Raises:
        ConfigError: none of them.
    """
    if given is not None:
        return given
    if saved is not None:
        return saved
    candidates = default_data_dirs("imdb")
    found = next((c for c in candidates if c.exists()), None)
    if found is not None or os.environ.get(DATA_ENV):
        return str(found or candidates[0])
    raise ConfigError("--data is required: the IMDb archive (e.g. ../shared/data/imdb/aclImdb_labeled.tar.xz) "
                      "or an extracted aclImdb/ directory (or set QUASIRNN_DATA to a directory holding imdb/)")


def _load_data(config: ClassifyConfig, vocab: Optional[Vocabulary] = None) -> ImdbData:
    return load_imdb(config.data, config.max_vocab, config.max_len, config.val_size, config.limit, vocab)


def make_task(config: ClassifyConfig, checkpoint: Optional[dict], dist: Distributed) -> tuple["ClassificationTask", str]:
    """The encoded reviews (the checkpoint's vocabulary when resuming) and the seeded model, as a
    task (holding ``config`` with the resolved data location and the windows the model was built
    with), and the run's header line.

    Raises:
        DataError: unreadable data, or data that do not give the checkpoint's vocabulary.
    """
    data = _load_data(config)
    if checkpoint is not None and data.vocab.itos != list(checkpoint["vocab"]):
        raise DataError(f"the training reviews in {data.source} do not give the vocabulary of the checkpoint "
                        f"({len(data.vocab):,} vs {len(checkpoint['vocab']):,} words); pass the run's --data")
    torch.manual_seed(config.optim.seed)
    model = build_classifier(config.model, len(data.vocab)).to(dist.device)
    config = dataclasses.replace(config, data=str(data.source.resolve()), model=config.model.as_built(model))
    header = (f"{config.model.cell} classifier: {model.num_parameters():,} parameters, vocabulary {len(data.vocab):,}, "
              f"{len(data.train):,} train / {len(data.val):,} val / {len(data.test):,} test reviews")
    return ClassificationTask(model, data, config, dist), header


#: The classification experiment as ``quasirnn classify train`` runs it (:mod:`quasirnn.training.launch`).
EXPERIMENT = Experiment("classify", "imdb", KIND, ("model", "best_model", "optimizer", "vocab", "progress"),
                        ClassifyConfig(), make_task, prepare=lambda config: config.replace(data=data_path(config.data)),
                        excluded_seconds=compile_seconds)


def load_for_inference(path: Path, device: torch.device, weights: str = "best",
                       quantize: Optional[str] = None) -> tuple[ClassifyConfig, Vocabulary, TextClassifier]:
    """A checkpoint's configuration, vocabulary, and model (``weights`` "best" or "last") in eval mode on ``device``;
    ``quantize`` "int8": the model :func:`quasirnn.quantize` makes of it (CPU only).

    Raises:
        CheckpointError: an unreadable checkpoint, one of another kind, or weights that do not fit.
        ConfigError: ``quantize`` on a GPU.
    """
    checkpoint, config = load_run(path, EXPERIMENT, ("model", "best_model", "vocab"))
    vocab = Vocabulary(checkpoint["vocab"])
    model = trained_model(build_classifier(config.model, len(vocab)), checkpoint, weights, path, device, quantize)
    return config, vocab, model


def evaluate_checkpoint(path: Path, data: Optional[str], split: str, weights: str, device: torch.device,
                        batch_size: Optional[int] = None, quantize: Optional[str] = None) -> dict[str, Any]:
    """Accuracy and loss of a checkpoint on the ``split`` ("test" or "val") reviews; ``quantize`` as
    :func:`load_for_inference`.

    Returns:
        ``{"split", "accuracy", "loss", "reviews", "weights", "checkpoint", "data"}``.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages.
    """
    config, vocab, model = load_for_inference(path, device, weights, quantize)
    config = config.replace(data=data_path(data, config.data))
    imdb = _load_data(config, vocab)
    reviews = imdb.test if split == "test" else imdb.val
    accuracy, loss, _ = evaluate(model, reviews, batch_size or config.eval_batch_size, device)
    return {"split": split, "accuracy": finite(accuracy), "loss": finite(loss), "reviews": len(reviews),
            "weights": weights, "checkpoint": str(path), "data": str(imdb.source)}


def review_problem(text: str) -> Optional[str]:
    """Why ``text`` cannot be classified, or None when it can: a review needs a word (or any
    non-space character: :func:`quasirnn.data.imdb.tokenize`).

    Example::

        >>> review_problem("A fine film."), review_problem("  ")
        (None, 'no word to classify')
    """
    return None if tokenize(text) else "no word to classify"


@torch.no_grad()
def predict_review(model: TextClassifier, vocab: Vocabulary, max_len: int, text: str,
                   device: torch.device) -> dict[str, Any]:
    """The predicted label of one raw review and the probabilities.

    The text is tokenized as the training reviews were (:func:`quasirnn.data.imdb.tokenize`) and
    its first ``max_len`` tokens are read.

    Returns:
        ``{"label": "positive" or "negative", "probability": that label's, "probabilities":
        {"negative": p, "positive": p}}``.

    Raises:
        DataError: a text without a word (:func:`review_problem`).

    Example::

        >>> from quasirnn.data.imdb import build_vocab
        >>> vocab = build_vocab([["a", "fine", "film"], ["a", "dull", "plot"]], min_freq=1)  # with <pad>, <unk>
        >>> model = TextClassifier(len(vocab), emb_size=8, hidden_size=6, num_layers=1).eval()
        >>> result = predict_review(model, vocab, 400, "A fine film!", torch.device("cpu"))
        >>> result["label"] in ("positive", "negative"), round(sum(result["probabilities"].values()), 6)
        (True, 1.0)
    """
    problem = review_problem(text)
    if problem is not None:
        raise DataError(f"{problem}: {text!r}")
    ids = encode(tokenize(text), vocab, max_len).unsqueeze(1).to(device)  # (T, 1)
    probs = torch.softmax(model(ids, torch.tensor([ids.size(0)])), dim=-1)[0]
    label = int(probs.argmax())
    return {"label": "positive" if LABELS[label] == "pos" else "negative", "probability": float(probs[label]),
            "probabilities": {"negative": float(probs[0]), "positive": float(probs[1])}}


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


@torch.no_grad()
def evaluate(model: TextClassifier, split: EncodedSplit, batch_size: int, device: torch.device,
             dist: Optional[Distributed] = None) -> tuple[float, float, int]:
    """Accuracy and mean cross-entropy of ``model`` over a split's reviews, over every rank's share.

    The reviews go in length-bucketed batches of ``batch_size`` (:meth:`EncodedSplit.batches`,
    unshuffled); in a distributed run rank r takes batches r, r + N, ... and the counts are summed
    over the ranks (a collective operation: every rank calls it). The model runs in eval mode and
    is put back in its previous mode afterwards.

    Args:
        model: the classifier (unwrapped), on ``device``.
        split: the encoded reviews and their labels.
        batch_size: reviews per batch, ≥ 1.
        device: where the batches go.
        dist: this rank's place in a distributed run, or None.

    Returns:
        (accuracy in [0, 1], mean loss in nats per review, number of reviews, all over the ranks);
        (nan, nan, 0) when there is no review.

    Example::

        >>> split = EncodedSplit([torch.tensor([2, 3]), torch.tensor([3])], torch.tensor([1, 0]))
        >>> model = TextClassifier(4, emb_size=8, hidden_size=6, num_layers=1)
        >>> accuracy, loss, count = evaluate(model, split, 8, torch.device("cpu"))
        >>> accuracy in (0.0, 0.5, 1.0), loss > 0, count
        (True, True, 2)
    """
    rank, world = (dist.rank, dist.world_size) if dist is not None and dist.enabled else (0, 1)
    was_training = model.training
    model.eval()
    correct, loss, count = 0.0, 0.0, 0
    try:
        for number, (ids, lengths, labels) in enumerate(split.batches(batch_size)):
            if number % world != rank:
                continue
            labels = labels.to(device)
            logits = model(ids.to(device), lengths)
            loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(-1) == labels).sum().item()
            count += labels.numel()
    finally:
        model.train(was_training)
    if world > 1:
        correct, loss, count = dist.sum([correct, loss, count])
    if count == 0:
        return math.nan, math.nan, 0
    return correct / count, loss / count, int(count)


class ClassificationTask(Task):
    """Trains a :class:`TextClassifier` on encoded IMDb splits (see the module docstring).

    Args:
        model: the classifier, on ``dist.device``.
        data: the encoded train, validation and test reviews with their vocabulary.
        config: the run's :class:`ClassifyConfig` (batch sizes, seed).
        dist: this rank's place in the run.
    """

    kind = KIND
    metric = "accuracy"
    mode = "max"

    def __init__(self, model: TextClassifier, data: ImdbData, config: ClassifyConfig, dist: Distributed) -> None:
        self.model, self.data, self.config, self.dist = model, data, config, dist
        self.batch_size, self.eval_batch_size, self.seed = config.batch_size, config.eval_batch_size, config.optim.seed
        self.train_lengths = data.train.lengths
        self.best = BestWeights()  # accuracy, over every validation: selects the weights that are tested
        self.val_accuracy = self.val_loss = math.nan

    # ------------------------------------------------------------------ training

    def batches_per_epoch(self) -> int:
        return self.data.train.num_batches(self.batch_size)

    def train_batches(self, epoch: int, position: int) -> Iterator[tuple[int, Any]]:
        split, device = self.data.train, self.dist.device
        order = length_batches(self.train_lengths, self.batch_size, shuffle=True,
                               generator=epoch_generator(self.seed, epoch))
        for number, index in enumerate(order[position:], start=position + 1):
            mine, counts = self.dist.batch_share(index)
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
        return f"{progress.per_second(progress.train_examples) or 0.0:,.1f} reviews/s"

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, split: EncodedSplit) -> tuple[float, float]:
        """(accuracy, mean loss) of the current weights over all ranks' share of ``split``'s batches."""
        return evaluate(self.model, split, self.eval_batch_size, self.dist.device, self.dist)[:2]

    def validate(self, step: int) -> Validation:
        """Validation accuracy of the current weights; keeps them when they are the best so far."""
        self.val_accuracy, self.val_loss = self._evaluate(self.data.val)
        if not self.val_accuracy <= self.best.value:  # NaN (no validation set): the latest weights
            self.best.keep(self.model, self.val_accuracy, step)
        return Validation(self.val_accuracy, {"val_accuracy": finite(self.val_accuracy), "val_loss": finite(self.val_loss)},
                          {"loss": self.val_loss, "accuracy": self.val_accuracy}, f"val accuracy {self.val_accuracy:.4f}")

    def test(self) -> tuple[float, float]:
        """(accuracy, loss) on the test reviews with the best-validation weights (the last ones stay in the model)."""
        with self.best.applied(self.model):
            return self._evaluate(self.data.test)

    def test_log(self, result: tuple[float, float]) -> dict[str, Any]:
        return {"loss": result[1], "accuracy": result[0]}

    # ------------------------------------------------------------------ checkpoint and metrics

    def state(self, progress: Progress) -> dict[str, Any]:
        return {"vocab": list(self.data.vocab.itos),
                "best_model": self.best.weights(self.model),
                "best": {"val_accuracy": self.best.value, "step": self.best.step}}

    def load_state(self, checkpoint: dict[str, Any], progress: Progress) -> None:
        best = checkpoint.get("best") or {"val_accuracy": checkpoint["progress"].get("best_val_accuracy", -1.0),
                                          "step": checkpoint["progress"].get("best_step", -1)}  # older checkpoints
        self.best.load(best["val_accuracy"], best["step"], checkpoint["best_model"])

    def metrics(self, progress: Progress, test: Optional[tuple[float, float]]) -> dict[str, Any]:
        data = self.data
        return {
            "val_accuracy": finite(self.best.value) if self.best.step >= 0 else None,
            "test_accuracy": None if test is None else finite(test[0]),
            "test_loss": None if test is None else finite(test[1]),
            "last_val_accuracy": finite(self.val_accuracy),
            "last_val_loss": finite(self.val_loss),
            "best_step": self.best.step if self.best.step >= 0 else None,
            "train_examples_per_s": progress.per_second(progress.train_examples),
            "vocab_size": len(data.vocab),
            "reviews": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "train_examples": progress.train_examples,
        }

    def done_text(self, progress: Progress, test: tuple[float, float]) -> str:
        return f"val accuracy {self.best.value:.4f} | test accuracy {test[0]:.4f} | {self.rate_text(progress)}"
