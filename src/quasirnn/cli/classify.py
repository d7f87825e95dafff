"""``quasirnn classify train | eval | predict``: IMDb sentiment classification (QRNN §3.1), its parsing and printing.

``classify train --help`` lists the options, the fields of
:class:`~quasirnn.experiments.classification.ClassifyConfig`; the run is
:class:`quasirnn.training.Trainer` with :class:`~quasirnn.experiments.classification.ClassificationTask`
(one process, or every rank of ``torchrun``), which keeps the best-validation weights for the
test. ``classify eval`` recomputes a run's accuracy; ``classify predict`` labels texts. ``classify export
--hf DIR`` writes a run as a Hugging Face folder (:mod:`quasirnn.hf.export`).
"""

from __future__ import annotations

import argparse
import json

from quasirnn.cli.common import (add_command_group, add_device_options, add_quantize_option, add_train_parser,
                                 print_result)
from quasirnn.cli.export import add_export_parser
from quasirnn.cli.inputs import PARTIAL_FAILURE_STATUS, read_texts, report_failures
from quasirnn.experiments.classification import EXPERIMENT, evaluate_checkpoint, load_for_inference, predict_review
from quasirnn.experiments.classification import review_problem
from quasirnn.training.device import setup_device
from quasirnn.training.launch import checkpoint_path
from quasirnn.training.options import positive_int

__all__ = ["add_parser", "run_eval", "run_predict"]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``classify`` (with ``train``, ``eval`` and ``predict``) on the top-level sub-commands."""
    top, sub = add_command_group(commands, "classify", "IMDb sentiment classification (QRNN paper §3.1)",
                                 "Document classification on IMDb movie reviews (QRNN paper §3.1).")
    add_train_parser(sub, EXPERIMENT, "train a sentiment classifier",
                     "Train a dense QRNN, SRU or LSTM classifier; writes OUT/metrics.json and OUT/checkpoint.pt.")

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
    add_quantize_option(e)
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
    add_quantize_option(p)
    add_device_options(p)
    add_export_parser(sub, "classify", "classifier", "model.safetensors (the best validation's weights, those classify "
                      "predict uses), the labels and a tokenizer that splits a review as training did")
    return top



def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn classify eval``: prints the accuracy of a checkpoint on the test or validation reviews.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages; printed by the CLI.
    """
    result = evaluate_checkpoint(checkpoint_path(args.checkpoint), args.data, args.split, args.weights,
                                 setup_device(args.device, args.threads), args.batch_size, args.quantize)
    return print_result(args, result, f"{args.split} accuracy {result['accuracy']:.4f} ({result['reviews']:,} reviews, "
                                      f"loss {result['loss']:.4f})")


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
    config, vocab, model = load_for_inference(checkpoint_path(args.checkpoint), device, quantize=args.quantize)
    texts = read_texts(args.texts)
    problems = report_failures("quasirnn classify predict", texts, review_problem)
    for item, problem in zip(texts, problems):
        if problem is not None:
            print(json.dumps({"error": problem}) if args.json else "", flush=True)
            continue
        result = predict_review(model, vocab, config.max_len, item.text, device)
        print(json.dumps(result) if args.json else f"{result['label']} {result['probability']:.4f}", flush=True)
    return PARTIAL_FAILURE_STATUS if any(p is not None for p in problems) else 0
