"""``quasirnn classify train | eval | predict``: IMDb sentiment classification (QRNN §3.1).

Train::

    quasirnn classify train --data ../shared/data/imdb/aclImdb_labeled.tar.xz [--cell qrnn|sru|lstm]
                            [--emb-size E] [--hidden-size H] [--num-layers L] [--max-vocab V]
                            [--max-len T] [--epochs N] [--time-budget MINUTES] [--seed S] [--out DIR]
    quasirnn classify train --resume OUT_DIR [--epochs N] [--time-budget MINUTES]

reads the archive (or an extracted ``aclImdb/``), carves a fixed validation set out of the 25k
training reviews, builds the vocabulary from the rest, and trains a densely connected QRNN (or
LSTM) classifier on length-bucketed, right-padded batches. After every epoch it measures
validation accuracy, keeps the weights with the best one, and writes ``OUT/checkpoint.pt``
and ``OUT/metrics.json`` atomically. At the end (all epochs, ``--max-steps``,
``--time-budget`` or Ctrl-C) the best-validation weights are evaluated on the 25k test
reviews. ``OUT/log.jsonl`` records every step; ``--checkpoint-every STEPS`` saves resumable
checkpoints in between; SIGTERM saves one and exits with status 143. ``--resume OUT_DIR``
continues a run, mid-epoch included, with its stored configuration (only the run length,
device, data location and logging may change). Under ``torchrun --nproc_per_node N`` every
rank trains on its share of each (global) batch. The loop is :class:`quasirnn.training.Trainer`
with :class:`quasirnn.tasks.ClassificationTask`.

Evaluate and predict::

    quasirnn classify eval --checkpoint OUT_DIR [--split test|val] [--json]
    quasirnn classify predict --checkpoint OUT_DIR "some review text" ["another review" ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from quasirnn.checkpoint_file import load_checkpoint, load_module_state
from quasirnn.cli.common import (
    add_device_options,
    add_model_options,
    add_optimisation_options,
    add_output_options,
    add_run_options,
    checkpoint_path,
    positive_int,
    run_training,
    setup_device,
    start_or_resume,
)
from quasirnn.cli.inputs import PARTIAL_FAILURE_STATUS, read_texts, report_failures
from quasirnn.data import Vocabulary
from quasirnn.data.imdb import LABELS, EncodedSplit, ImdbData, encode, load_imdb, tokenize
from quasirnn.errors import ConfigError, DataError
from quasirnn.models import CELLS, TextClassifier, evaluate_classifier
from quasirnn.models.classifier import POOLINGS
from quasirnn.models.presets import legacy_windows
from quasirnn.tasks.classification import ClassificationTask, classifier_loss
from quasirnn.training import Distributed
from quasirnn.training.optim import optimizer_step
from quasirnn.training.runlog import finite

__all__ = ["ClassifyConfig", "add_parser", "build_classifier", "run_eval", "run_predict", "run_train", "train_step"]

KIND = "classifier"


@dataclass
class ClassifyConfig:
    """Configuration of a classification run (plain values; stored in the checkpoint).

    The defaults are meant to reach ≥ 88% IMDb test accuracy within the 60-minute
    ``time_budget`` on a 2-core CPU without pretrained vectors: vocabulary of the 25,000 most
    frequent training words, reviews cut to 400 tokens (82% of the training reviews are no longer;
    median 201 tokens), a densely
    connected 4-layer QRNN with embedding 128 and hidden 128 (window 2 in the first layer, 1
    above), masked mean pooling, dropout 0.3 between layers and on the pooled features, Adam.
    ``data``, ``max_vocab``, ``max_len``, ``val_size`` and ``limit`` define the data and the
    vocabulary, so a resumed run keeps them.
    """

    # data
    data: Optional[str] = None
    max_vocab: int = 25_000
    max_len: int = 400
    val_size: int = 2_500
    limit: Optional[int] = None
    # model
    cell: str = "qrnn"
    emb_size: int = 128
    hidden_size: int = 128
    num_layers: int = 4
    window: Union[int, list[int]] = 2
    dense: bool = True
    pooling: str = "mean"
    zoneout: float = 0.0
    dropout: float = 0.3
    dropouth: float = 0.3
    dropouti: float = 0.2
    dropoute: float = 0.1
    # optimisation
    batch_size: int = 32
    eval_batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    wdecay: float = 0.0
    clip: float = 1.0
    lr_decay: float = 0.5
    lr_patience: int = 0
    seed: int = 1111
    # run length and session (may change on --resume)
    epochs: int = 30
    max_steps: Optional[int] = None
    time_budget: Optional[float] = 60.0
    checkpoint_every: int = 0
    device: str = "auto"
    threads: Optional[int] = None
    log_interval: int = 50


#: Keys a resumed run keeps from its checkpoint (they define the data, the model and the optimisation).
FIXED_KEYS = (
    "max_vocab", "max_len", "val_size", "limit", "cell", "emb_size", "hidden_size", "num_layers", "window", "dense",
    "pooling", "zoneout", "dropout", "dropouth", "dropouti", "dropoute", "batch_size", "eval_batch_size", "optimizer",
    "lr", "wdecay", "clip", "lr_decay", "lr_patience", "seed",
)
#: Keys a resumed run may override.
SESSION_KEYS = ("epochs", "max_steps", "time_budget", "checkpoint_every", "device", "threads", "log_interval", "data")
#: Session keys taken from the checkpoint unless given again.
INHERITED_KEYS = ("epochs", "checkpoint_every", "data")
DEFAULTS = ClassifyConfig()


# ---------------------------------------------------------------------------- argument parsing


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``classify`` (with ``train``, ``eval`` and ``predict``) on the top-level sub-commands."""
    top = commands.add_parser("classify", help="IMDb sentiment classification (QRNN paper §3.1)",
                              description="Document classification on IMDb movie reviews (QRNN paper §3.1).")
    sub = top.add_subparsers(dest="classify_command", metavar="COMMAND", required=True)
    d = DEFAULTS

    t = sub.add_parser("train", help="train a sentiment classifier",
                       description="Train a dense QRNN, SRU or LSTM classifier; writes OUT/metrics.json and OUT/checkpoint.pt.")
    t.set_defaults(func=run_train)
    g = t.add_argument_group("data and output")
    g.add_argument("--data", metavar="PATH", default=None,
                   help="the IMDb archive (aclImdb_labeled.tar.xz, aclImdb_v1.tar.gz), an extracted aclImdb/ "
                        "directory, or a directory holding one (default: $QUASIRNN_DATA/imdb)")
    g.add_argument("--max-vocab", type=positive_int, default=None,
                   help=f"vocabulary size, <pad> and <unk> included, from the training reviews (default: {d.max_vocab})")
    g.add_argument("--max-len", type=positive_int, default=None,
                   help=f"keep the first T tokens of each review (default: {d.max_len})")
    g.add_argument("--val-size", type=int, default=None,
                   help=f"training reviews held out for validation, fixed seed (default: {d.val_size})")
    g.add_argument("--limit", type=positive_int, default=None,
                   help="read only the first N reviews of each split and label (quick experiments; default: all)")
    add_output_options(g, "runs/imdb-CELL-TIMESTAMP")
    g = t.add_argument_group("model")
    add_model_options(g, d, CELLS, hidden="hidden size H of every layer", dropout="dropout on the pooled features",
                      dropouth="dropout between layers", dropouti="dropout on the embeddings")
    g.add_argument("--dense", action=argparse.BooleanOptionalAction, default=None,
                   help=f"densely connected layers, QRNN §2.1 (default: {d.dense})")
    g.add_argument("--pooling", choices=POOLINGS, default=None,
                   help=f"masked mean over the real steps, or the last real step (default: {d.pooling})")
    g = t.add_argument_group("optimisation")
    add_optimisation_options(g, d, "validation accuracy")
    add_run_options(t, d)

    e = sub.add_parser("eval", help="evaluate a trained classifier",
                       description="Recompute the accuracy of a trained classifier on the test or validation reviews.")
    e.set_defaults(func=run_eval)
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file, or a run's output directory")
    e.add_argument("--data", metavar="PATH", default=None, help="IMDb archive or directory (default: the training run's)")
    e.add_argument("--split", choices=("test", "val"), default="test", help="reviews to evaluate (default: test)")
    e.add_argument("--weights", choices=("best", "last"), default="best",
                   help="the best-validation weights (reported as test_accuracy) or the last ones (default: best)")
    e.add_argument("--batch-size", type=positive_int, default=None, help="evaluation batch size (default: the run's)")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_device_options(e)

    p = sub.add_parser("predict", help="classify review texts with a trained classifier",
                       description="Print the predicted label and its probability for each text, one line per text. "
                                   "No TEXT, or -, reads the texts from stdin, one per line. A text without a word "
                                   "is an error for that text only (one line on stderr, an empty output line in its "
                                   "place); the exit status is then 1.")
    p.set_defaults(func=run_predict)
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file, or a run's output directory")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="review text(s) to classify; - = stdin (default: stdin)")
    p.add_argument("--json", action="store_true", help="one JSON object per text ({\"error\": ...} for a failed one)")
    add_device_options(p)
    return top


# ---------------------------------------------------------------------------- helpers


def build_classifier(config: dict[str, Any], vocab_size: int) -> TextClassifier:
    """The :class:`TextClassifier` that ``config`` (a :class:`ClassifyConfig` as a dict) describes.

    Raises:
        ConfigError: the options do not make a valid model.
    """
    try:
        return TextClassifier(
            vocab_size, emb_size=config["emb_size"], hidden_size=config["hidden_size"],
            num_layers=config["num_layers"], num_classes=len(LABELS), cell=config["cell"],
            window=legacy_windows(config["window"], config["num_layers"]),
            dense=config["dense"], pooling=config["pooling"], zoneout=config["zoneout"], dropout=config["dropout"],
            dropouth=config["dropouth"], dropouti=config["dropouti"], dropoute=config["dropoute"],
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _validate(config: dict[str, Any]) -> None:
    """Completes the data location and checks the classification-only options."""
    config["data"] = _data_path(config["data"])
    if config["max_vocab"] < 3:
        raise ConfigError(f"--max-vocab must be >= 3 (<pad>, <unk> and one word), got {config['max_vocab']}")
    if config["val_size"] < 0:
        raise ConfigError(f"--val-size must be >= 0, got {config['val_size']}")


def _data_path(given: Optional[str], saved: Optional[str] = None) -> str:
    if given is not None:
        return given
    if saved is not None:
        return saved
    env = os.environ.get("QUASIRNN_DATA")
    if env:
        return str(Path(env) / "imdb")
    raise ConfigError("--data is required: the IMDb archive (e.g. ../shared/data/imdb/aclImdb_labeled.tar.xz) "
                      "or an extracted aclImdb/ directory (or set QUASIRNN_DATA to a directory holding imdb/)")


def _load_data(config: dict[str, Any], vocab: Optional[Vocabulary] = None) -> ImdbData:
    return load_imdb(config["data"], config["max_vocab"], config["max_len"], config["val_size"], config["limit"], vocab)


def _batches(split: EncodedSplit, batch_size: int, device: torch.device, **kwargs):
    for ids, lengths, labels in split.batches(batch_size, **kwargs):
        yield ids.to(device), lengths, labels.to(device)


def _evaluate(model: TextClassifier, split: EncodedSplit, batch_size: int, device: torch.device) -> tuple[float, float]:
    accuracy, loss, _ = evaluate_classifier(model, _batches(split, batch_size, device))
    return accuracy, loss


def train_step(model: TextClassifier, optimizer: torch.optim.Optimizer, ids: torch.Tensor, lengths: torch.Tensor,
               labels: torch.Tensor, clip: float = 0.0) -> tuple[float, int]:
    """One optimizer step on a padded batch, as ``classify train`` takes it: mean cross-entropy, backward, clip, step.

    Args:
        ids: LongTensor (T, B) right-padded; lengths (B,); labels LongTensor (B,).
        clip: gradient-norm clipping, 0 = off.

    Returns:
        (loss in nats per review, number of correct predictions in the batch).
    """
    loss, correct = classifier_loss(model, ids, lengths, labels)
    optimizer_step(model, optimizer, loss, clip)
    return loss.item(), int(correct)


def _start_or_resume(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]:
    """The run's configuration, output directory, and checkpoint (and its path) when resuming."""
    return start_or_resume(args, KIND, ("model", "best_model", "optimizer", "vocab", "progress"),
                           dataclasses.asdict(DEFAULTS), (FIXED_KEYS, SESSION_KEYS, INHERITED_KEYS), "imdb", _validate)


# ---------------------------------------------------------------------------- training


def run_train(args: argparse.Namespace) -> int:
    """``quasirnn classify train``: trains, evaluates, writes metrics.json, checkpoint.pt and log.jsonl.

    Runs as one process, or as every rank of ``torchrun --nproc_per_node N`` (each rank trains on
    its share of every batch; rank 0 writes the files).

    Returns:
        The exit status (0; 130 after Ctrl-C, once saved, evaluated and reported; 143 after SIGTERM, with a
        resumable checkpoint saved).

    Raises:
        DataError, CheckpointError, ConfigError, DivergedError: see the messages; printed by the CLI.
    """
    return run_training(args, _start_or_resume, _make_task)


def _make_task(config: dict[str, Any], checkpoint: Optional[dict], dist: Distributed) -> tuple[ClassificationTask, str]:
    """The encoded reviews (the checkpoint's vocabulary when resuming) and the seeded model, as a task."""
    data = _load_data(config)
    config["data"] = str(data.source.resolve())
    if checkpoint is not None and data.vocab.itos != list(checkpoint["vocab"]):
        raise DataError(f"the training reviews in {data.source} do not give the vocabulary of the checkpoint "
                        f"({len(data.vocab):,} vs {len(checkpoint['vocab']):,} words); pass the run's --data")
    torch.manual_seed(config["seed"])
    model = build_classifier(config, len(data.vocab)).to(dist.device)
    header = (f"{config['cell']} classifier: {model.num_parameters():,} parameters, vocabulary {len(data.vocab):,}, "
              f"{len(data.train):,} train / {len(data.val):,} val / {len(data.test):,} test reviews")
    return ClassificationTask(model, data, config, dist), header


# ---------------------------------------------------------------------------- eval and predict


def _load_for_inference(args: argparse.Namespace, weights: str = "best"):
    path = checkpoint_path(args.checkpoint)
    checkpoint = load_checkpoint(path, KIND, required=("model", "best_model", "vocab"))
    config = dataclasses.asdict(DEFAULTS)
    config.update(checkpoint["config"])
    device = setup_device(args.device, args.threads)
    vocab = Vocabulary(checkpoint["vocab"])
    model = build_classifier(config, len(vocab))
    load_module_state(model, checkpoint["best_model" if weights == "best" else "model"], path)
    return path, config, vocab, model.to(device).eval(), device


def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn classify eval``: prints the accuracy of a checkpoint on the test or validation reviews.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages; printed by the CLI.
    """
    path, config, vocab, model, device = _load_for_inference(args, args.weights)
    config["data"] = _data_path(args.data, config.get("data"))
    data = _load_data(config, vocab)
    split = data.test if args.split == "test" else data.val
    accuracy, loss = _evaluate(model, split, args.batch_size or config["eval_batch_size"], device)
    result = {"split": args.split, "accuracy": finite(accuracy), "loss": finite(loss), "reviews": len(split),
              "weights": args.weights, "checkpoint": str(path), "data": str(data.source)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split} accuracy {accuracy:.4f} ({len(split):,} reviews, loss {loss:.4f})")
    return 0


@torch.no_grad()
def run_predict(args: argparse.Namespace) -> int:
    """``quasirnn classify predict``: prints the predicted label and its probability for each text.

    The texts come from the arguments or stdin (:func:`quasirnn.cli.inputs.read_texts`); a text
    without a word is reported on stderr and gets an empty line (``{"error": ...}`` with
    ``--json``) in its place, and the others are still classified.

    Returns:
        0, or 1 when some texts failed.

    Raises:
        CheckpointError: see the messages.
    """
    _, config, vocab, model, device = _load_for_inference(args)
    texts = read_texts(args.texts)
    token_lists = [tokenize(item.text) for item in texts]
    problems = report_failures("quasirnn classify predict", texts,
                               lambda text: None if tokenize(text) else "no word to classify")
    for tokens, problem in zip(token_lists, problems):
        if problem is not None:
            print(json.dumps({"error": problem}) if args.json else "", flush=True)
            continue
        ids = encode(tokens, vocab, config["max_len"]).unsqueeze(1).to(device)  # (T, 1)
        probs = torch.softmax(model(ids, torch.tensor([ids.size(0)])), dim=-1)[0]
        label = int(probs.argmax())
        name = "positive" if LABELS[label] == "pos" else "negative"
        if args.json:
            print(json.dumps({"label": name, "probability": float(probs[label]),
                              "probabilities": {"negative": float(probs[0]), "positive": float(probs[1])}}))
        else:
            print(f"{name} {float(probs[label]):.4f}", flush=True)
    return PARTIAL_FAILURE_STATUS if any(p is not None for p in problems) else 0
