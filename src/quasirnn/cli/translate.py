"""``quasirnn translate train | eval | translate``: character-level German→English (QRNN §3.3), its parsing and printing.

``translate train --help`` (:data:`TRAIN_DESCRIPTION`) lists the options, the fields of
:class:`~quasirnn.experiments.translation.TranslateConfig`; Multi30k is found as
:func:`~quasirnn.experiments.translation.resolve_multi30k_dir` says. The run is :class:`quasirnn.training.Trainer`
with :class:`~quasirnn.experiments.translation.TranslationTask` (one process, or every rank of
``torchrun``). ``translate eval`` prints a checkpoint's BLEU on a split; ``translate translate``
translates sentences from the arguments or stdin.
"""

from __future__ import annotations

import argparse

from quasirnn.cli.common import (add_command_group, add_device_options, add_quantize_option, add_train_parser,
                                 print_result)
from quasirnn.cli.inputs import PARTIAL_FAILURE_STATUS, read_texts, report_failures
from quasirnn.experiments.translation import EXPERIMENT, TEST_SPLIT, evaluate_checkpoint, load_for_inference
from quasirnn.experiments.translation import translate_lines
from quasirnn.training.device import setup_device
from quasirnn.training.launch import checkpoint_path
from quasirnn.training.options import nonnegative_float, positive_int

__all__ = ["add_parser", "run_eval", "run_translate"]

#: ``translate train --help``'s description (plain text, no markup; argparse re-wraps it).
TRAIN_DESCRIPTION = """\
Train a character-level QRNN (or LSTM) encoder-decoder on German-English Multi30k (QRNN paper
section 3.3): reads DIR/{train,val,test_2016_flickr}.{de,en}[.gz] (default: $QUASIRNN_DATA/multi30k,
else the user cache's multi30k), builds one character vocabulary per language from the training
pairs, and trains with teacher forcing on length-bucketed batches (Adam, gradient clipping, label
smoothing). After every epoch it translates the validation set greedily, measures BLEU, keeps the
weights with the best one, multiplies the learning rate by --lr-decay once BLEU has not improved for
more than --lr-patience epochs, and writes OUT/checkpoint.pt and OUT/metrics.json. The default model
is the paper's: 4 layers of 320 units, QRNN encoder windows 6, 2, 2, 2. At the end (all epochs,
--max-steps, --time-budget or Ctrl-C) the best weights translate validation and test_2016_flickr
with beam search (--final-beam). OUT/log.jsonl records every step. Ctrl-C saves, evaluates and
exits with status 130; SIGTERM saves a checkpoint and exits with status 143. --resume OUT_DIR
continues a run, mid-epoch included, with its stored configuration (only the run length, device,
data location, evaluation and logging options may change)."""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``translate`` (with ``train``, ``eval``, ``translate``) to the ``quasirnn`` sub-commands."""
    p, sub = add_command_group(commands, "translate", "character-level German-English translation (QRNN paper section 3.3)",
                               "Character-level encoder-decoder translation on Multi30k (QRNN paper section 3.3).")
    add_train_parser(sub, EXPERIMENT, "train an encoder-decoder", TRAIN_DESCRIPTION)

    e = sub.add_parser("eval", help="BLEU of a checkpoint on a split",
                       description="Translate one split with a trained translator (beam search) and print its BLEU "
                                   "against the references (sacrebleu, raw cased text).")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a run directory or checkpoint file")
    e.add_argument("--data", metavar="DIR", default=None, help="data folder (default: the checkpoint's)")
    e.add_argument("--split", default=TEST_SPLIT, help=f"file prefix of the split (default: {TEST_SPLIT})")
    _add_inference_options(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_eval)

    r = sub.add_parser("translate", help="translate text from arguments or stdin (one sentence per line)",
                       description="Print one English translation per German sentence. No TEXT, or -, reads the "
                                   "sentences from stdin, one per line. An empty sentence is an error for that line "
                                   "only (one line on stderr, an empty output line in its place); the exit status "
                                   "is then 1.")
    r.add_argument("--checkpoint", required=True, metavar="PATH", help="a run directory or checkpoint file")
    r.add_argument("text", nargs="*", metavar="TEXT", help="German sentences; - = stdin (default: stdin)")
    _add_inference_options(r)
    r.set_defaults(func=run_translate)
    return p


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=positive_int, default=5, help="beam size, 1 = greedy (default: 5)")
    p.add_argument("--length-penalty", type=nonnegative_float, default=1.0,
                   help="alpha of the length normalisation score / length**alpha (default: 1)")
    p.add_argument("--max-len", type=positive_int, default=None, help="longest output (default: the training --max-len)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="sentences per batch (default: 100)")
    p.add_argument("--weights", choices=("best", "last"), default="best",
                   help="the best-validation-BLEU weights or the last ones (default: best)")
    add_quantize_option(p)
    add_device_options(p)



def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn translate eval``: prints the BLEU of a checkpoint's translations of one split.

    Raises:
        CheckpointError, DataError: see the messages; printed by the CLI.
    """
    r = evaluate_checkpoint(checkpoint_path(args.checkpoint), args.data, args.split,
                            setup_device(args.device, args.threads), args.weights, args.beam, args.batch_size,
                            args.length_penalty, args.max_len, args.quantize)
    return print_result(args, r, f"{args.split}: BLEU {r['bleu']:.2f} ({r['sentences']} sentences, beam {args.beam}, "
                                 f"{r['seconds']:.0f}s)")


def run_translate(args: argparse.Namespace) -> int:
    """``quasirnn translate translate``: one translation per input sentence on stdout.

    The sentences come from the arguments or stdin (:func:`quasirnn.cli.inputs.read_texts`); an
    empty one is reported on stderr and gets an empty output line, the others are translated.

    Returns:
        0, or 1 when some sentences were empty.
    """
    device = setup_device(args.device, args.threads)
    config, src_vocab, tgt_vocab, model = load_for_inference(checkpoint_path(args.checkpoint), device, args.weights,
                                                                args.quantize)
    max_len = args.max_len or config.max_len
    texts = read_texts(args.text)
    problems = report_failures("quasirnn translate translate", texts,
                               lambda text: None if text.strip() else "empty sentence: nothing to translate")
    good = [item.text for item, problem in zip(texts, problems) if problem is None]
    translations = iter(translate_lines(model, good, src_vocab, tgt_vocab, device, max_len, args.beam,
                                        args.batch_size, args.length_penalty) if good else [])
    for problem in problems:
        print("" if problem is not None else next(translations))
    return PARTIAL_FAILURE_STATUS if any(p is not None for p in problems) else 0
