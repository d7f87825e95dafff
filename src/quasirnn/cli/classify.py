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
with :class:`quasirnn.experiments.classification.ClassificationTask`.

Evaluate and predict::

    quasirnn classify eval --checkpoint OUT_DIR [--split test|val] [--json]
    quasirnn classify predict --checkpoint OUT_DIR "some review text" ["another review" ...]
"""

from __future__ import annotations

import argparse
import json

import torch

from quasirnn.cli.common import TrainCommand, add_config_options, add_device_options, checkpoint_path, setup_device
from quasirnn.cli.common import train_command
from quasirnn.cli.inputs import PARTIAL_FAILURE_STATUS, read_texts, report_failures
from quasirnn.data.imdb import LABELS, encode, tokenize
from quasirnn.experiments.classification import KIND, ClassifyConfig, data_path, evaluate_checkpoint
from quasirnn.experiments.classification import load_for_inference, make_task
from quasirnn.training.options import positive_int

__all__ = ["add_parser", "run_eval", "run_predict", "run_train"]

DEFAULTS = ClassifyConfig()
TRAIN = TrainCommand("classify", "imdb", KIND, ("model", "best_model", "optimizer", "vocab", "progress"), DEFAULTS,
                     make_task, prepare=lambda config: config.replace(data=data_path(config.data)))


# ---------------------------------------------------------------------------- argument parsing


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``classify`` (with ``train``, ``eval`` and ``predict``) on the top-level sub-commands."""
    top = commands.add_parser("classify", help="IMDb sentiment classification (QRNN paper §3.1)",
                              description="Document classification on IMDb movie reviews (QRNN paper §3.1).")
    sub = top.add_subparsers(dest="classify_command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a sentiment classifier",
                       description="Train a dense QRNN, SRU or LSTM classifier; writes OUT/metrics.json and OUT/checkpoint.pt.")
    t.set_defaults(func=run_train)
    add_config_options(t, TRAIN)

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


run_train = train_command(TRAIN)


# ---------------------------------------------------------------------------- eval and predict


def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn classify eval``: prints the accuracy of a checkpoint on the test or validation reviews.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages; printed by the CLI.
    """
    result = evaluate_checkpoint(checkpoint_path(args.checkpoint), args.data, args.split, args.weights,
                                 setup_device(args.device, args.threads), args.batch_size)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split} accuracy {result['accuracy']:.4f} ({result['reviews']:,} reviews, loss {result['loss']:.4f})")
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
    device = setup_device(args.device, args.threads)
    config, vocab, model = load_for_inference(checkpoint_path(args.checkpoint), device)
    texts = read_texts(args.texts)
    token_lists = [tokenize(item.text) for item in texts]
    problems = report_failures("quasirnn classify predict", texts,
                               lambda text: None if tokenize(text) else "no word to classify")
    for tokens, problem in zip(token_lists, problems):
        if problem is not None:
            print(json.dumps({"error": problem}) if args.json else "", flush=True)
            continue
        ids = encode(tokens, vocab, config.max_len).unsqueeze(1).to(device)  # (T, 1)
        probs = torch.softmax(model(ids, torch.tensor([ids.size(0)])), dim=-1)[0]
        label = int(probs.argmax())
        name = "positive" if LABELS[label] == "pos" else "negative"
        if args.json:
            print(json.dumps({"label": name, "probability": float(probs[label]),
                              "probabilities": {"negative": float(probs[0]), "positive": float(probs[1])}}))
        else:
            print(f"{name} {float(probs[label]):.4f}", flush=True)
    return PARTIAL_FAILURE_STATUS if any(p is not None for p in problems) else 0
