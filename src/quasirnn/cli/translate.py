"""``quasirnn translate train | eval | translate``: character-level German→English (QRNN §3.3).

Train::

    quasirnn translate train [--data DIR] [--cell qrnn|lstm] [--emb-size E] [--hidden-size H]
                             [--num-layers L] [--encoder-window K,..] [--decoder-window K,..]
                             [--max-len N] [--batch-size B] [--time-budget MINUTES] [--threads N]
                             [--checkpoint-every STEPS] [--seed S] [--out DIR]
    quasirnn translate train --resume OUT_DIR [--time-budget MINUTES] [--epochs N]

does what :data:`TRAIN_DESCRIPTION` (its ``--help``) says; Multi30k is found as
:mod:`quasirnn.experiments.translation.multi30k` says. Under ``torchrun --nproc_per_node N`` every rank trains on its
share of each (global) batch of sentence pairs.
The loop is :class:`quasirnn.training.Trainer` with :class:`quasirnn.experiments.translation.TranslationTask`.

BLEU is ``sacrebleu.corpus_bleu`` on the raw, cased output against the raw references: a
character model writes detokenized text, so this is the BLEU people report.

``chars_per_s`` is training throughput: source characters plus target characters (``<eos>``
included) of the training batches per second of training time (forward, backward and
optimizer step; evaluation excluded).

Evaluate and translate::

    quasirnn translate eval --checkpoint OUT_DIR [--split test_2016_flickr] [--beam N]
    quasirnn translate translate --checkpoint OUT_DIR [--beam N] ["Ein Satz." ...]   (or lines on stdin)
"""

from __future__ import annotations

import argparse
import json
import time

from quasirnn.cli.common import TrainCommand, add_config_options, add_device_options, checkpoint_path, setup_device
from quasirnn.cli.common import train_command
from quasirnn.cli.inputs import PARTIAL_FAILURE_STATUS, read_texts, report_failures
from quasirnn.experiments.translation import (KIND, TEST_SPLIT, TranslateConfig, bleu,
                                              data_directory, load_for_inference, load_split, make_task,
                                              translate_lines, upgrade_checkpoint)
from quasirnn.training.options import nonnegative_float, positive_int

__all__ = ["add_parser", "run_eval", "run_train", "run_translate"]

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
TRAIN = TrainCommand("translate", "translate", KIND, ("model", "best_model", "optimizer", "src_vocab", "tgt_vocab"),
                     TranslateConfig(), make_task, prepare=TranslateConfig.resolved, upgrade=upgrade_checkpoint)


# ---------------------------------------------------------------------------- argument parsing


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``translate`` (with ``train``, ``eval``, ``translate``) to the ``quasirnn`` sub-commands."""
    p = commands.add_parser("translate", help="character-level German-English translation (QRNN paper section 3.3)",
                            description="Character-level encoder-decoder translation on Multi30k (QRNN paper section 3.3).")
    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train an encoder-decoder", description=TRAIN_DESCRIPTION)
    add_config_options(t, TRAIN)
    t.set_defaults(func=run_train)

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
    add_device_options(p)


run_train = train_command(TRAIN)


# ---------------------------------------------------------------------------- eval / translate


def _load_for_inference(args: argparse.Namespace):
    device = setup_device(args.device, args.threads)
    config, src_vocab, tgt_vocab, model = load_for_inference(checkpoint_path(args.checkpoint), device, args.weights)
    return model, config, src_vocab, tgt_vocab, device, args.max_len or config.max_len


def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn translate eval``: BLEU of a checkpoint's translations of one split."""
    model, config, src_vocab, tgt_vocab, device, max_len = _load_for_inference(args)
    src, tgt = load_split(data_directory(args.data if args.data is not None else config.data), args.split)
    t0 = time.perf_counter()
    hyps = translate_lines(model, src, src_vocab, tgt_vocab, device, max_len, args.beam, args.batch_size,
                           args.length_penalty)
    score = bleu(hyps, tgt)
    result = {"split": args.split, "bleu": score, "beam": args.beam, "sentences": len(src),
              "seconds": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split}: BLEU {score:.2f} ({len(src)} sentences, beam {args.beam}, {result['seconds']:.0f}s)")
    return 0


def run_translate(args: argparse.Namespace) -> int:
    """``quasirnn translate translate``: one translation per input sentence on stdout.

    The sentences come from the arguments or stdin (:func:`quasirnn.cli.inputs.read_texts`); an
    empty one is reported on stderr and gets an empty output line, the others are translated.

    Returns:
        0, or 1 when some sentences were empty.
    """
    model, config, src_vocab, tgt_vocab, device, max_len = _load_for_inference(args)
    texts = read_texts(args.text)
    problems = report_failures("quasirnn translate translate", texts,
                               lambda text: None if text.strip() else "empty sentence: nothing to translate")
    good = [item.text for item, problem in zip(texts, problems) if problem is None]
    translations = iter(translate_lines(model, good, src_vocab, tgt_vocab, device, max_len, args.beam,
                                        args.batch_size, args.length_penalty) if good else [])
    for problem in problems:
        print("" if problem is not None else next(translations))
    return PARTIAL_FAILURE_STATUS if any(p is not None for p in problems) else 0
