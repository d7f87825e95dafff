"""``quasirnn lm train | finetune | eval``: word-level language modeling (QRNN §3.2), its parsing and printing.

``lm train --help`` lists the options: the fields of
:class:`~quasirnn.experiments.language_model.LMConfig`, and ``--preset``, an AWD-QRNN recipe of
:mod:`~quasirnn.experiments.language_model.presets`. The run is :class:`quasirnn.training.Trainer`
with :class:`~quasirnn.experiments.language_model.LanguageModelTask`, in one process or on every
rank of ``torchrun --nproc_per_node N -m quasirnn.cli.main lm train ...`` (``--batch-size`` stays
the global batch). ``lm finetune`` trains a trained run further as awd-lstm-lm's ``finetune.py``
does (:mod:`~quasirnn.experiments.language_model.finetune`), into a new run. ``lm eval``
recomputes the perplexity a run reported, with the checkpoint's vocabulary, weights, evaluation
batch size, bptt and precision.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from quasirnn.cli.common import (add_command_group, add_config_options, add_device_options, add_train_parser,
                                 given_options, print_result, show_progress_bar)
from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model import EXPERIMENT, PRESETS, evaluate_checkpoint, perplexity, start_finetune
from quasirnn.training.device import setup_device
from quasirnn.training.config import SESSION
from quasirnn.training.launch import checkpoint_path, run_training, start_or_resume
from quasirnn.training.options import DATA, MODEL, positive_int
from quasirnn.training.precision import PRECISION_HELP, PRECISION_METAVAR

__all__ = ["FINETUNE_OPTIONS", "add_parser", "run_eval", "run_finetune"]

#: The configuration fields ``lm finetune`` takes (the others are the trained run's).
FINETUNE_OPTIONS = ("data", "epochs", "max_steps", "time_budget", "checkpoint_every", "seed", "lr", "nonmono",
                    "device", "threads", "log_interval", "precision")


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``lm`` (with ``train``, ``finetune`` and ``eval``) on the top-level sub-command set."""
    lm, sub = add_command_group(commands, "lm", "word-level language modeling (QRNN paper §3.2)",
                                "Word-level language modeling on the Penn Treebank (QRNN paper §3.2).")
    add_train_parser(sub, EXPERIMENT, "train a language model",
                     "Train a QRNN, SRU or LSTM language model; writes OUT/metrics.json and OUT/checkpoint.pt.",
                     before={MODEL: _add_preset_option})

    f = sub.add_parser("finetune", help="fine-tune a trained language model (awd-lstm-lm finetune.py)",
                       description="Train a trained run further with averaged SGD from the start, as awd-lstm-lm's "
                                   "finetune.py: its configuration, the best validation's weights kept, stopped after "
                                   "the first epoch worse than the best before the last --nonmono. Writes a new run "
                                   "(default: RUN-finetune beside RUN); the trained run is only read.")
    f.set_defaults(func=run_finetune)
    kinds = EXPERIMENT.defaults.resume_kinds()
    add_config_options(f, EXPERIMENT, before={DATA: _add_source_option}, only=FINETUNE_OPTIONS,
                       default_texts={name: "the trained run's" for name in FINETUNE_OPTIONS
                                      if kinds[name] != SESSION or name == "data"},
                       default_out="RUN-finetune beside RUN")

    e = sub.add_parser("eval", help="evaluate a trained language model",
                       description="Recompute the perplexity of a trained language model on a split.")
    e.set_defaults(func=run_eval)
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file, or a run's output directory")
    e.add_argument("--data", metavar="DIR", default=None,
                   help="corpus directory (default: the training run's, else $QUASIRNN_DATA/ptb or the cache)")
    e.add_argument("--split", choices=("test", "valid"), default="test", help="split to evaluate (default: test)")
    e.add_argument("--batch-size", type=positive_int, default=None, help="evaluation batch size (default: the run's)")
    e.add_argument("--bptt", type=positive_int, default=None, help="window length (default: the run's)")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_device_options(e)
    e.add_argument("--precision", metavar=PRECISION_METAVAR, default=None,
                   help=PRECISION_HELP.replace("{default}", "the run's"))
    return lm


def _add_preset_option(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="start from an AWD-QRNN recipe, all of a salesforce/awd-lstm-lm README command (sizes, "
                        "dropouts, weight drop, AR/TAR, NT-ASGD or Adam with --when, BPTT, epochs, the best model "
                        "tested at batch 1); options given explicitly override it. Reported test "
                        "perplexities: " + "; ".join(f"{p.name} {p.reported['test']}" for p in PRESETS.values()))



def _add_source_option(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--checkpoint", metavar="RUN", default=None,
                   help="the trained run: its output directory or checkpoint file (its corpus is the default --data)")


def run_finetune(args: argparse.Namespace) -> int:
    """``quasirnn lm finetune``: a new fine-tuning of ``--checkpoint RUN``, or ``--resume OUT`` of one.

    Raises:
        ConfigError: neither or both of --checkpoint and --resume; see also ``lm train``.
    """
    wall_start = time.perf_counter()
    if (args.checkpoint is None) == (args.resume is None):
        raise ConfigError("lm finetune needs --checkpoint RUN, the trained run (or --resume OUT to continue a "
                          "fine-tuning), not both")
    given = given_options(args, EXPERIMENT.defaults)
    if args.resume is not None:
        experiment, start = EXPERIMENT, start_or_resume(EXPERIMENT, given, args.resume, args.out, args.overwrite)
    else:
        experiment, start = start_finetune(args.checkpoint, given, args.out, args.overwrite)
    return run_training(experiment, start, show_progress_bar(args), args.quiet, wall_start)


def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn lm eval``: prints the perplexity of a checkpoint on a split.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages; printed by the CLI.
    """
    device = setup_device(args.device, args.threads)
    result: dict[str, Any] = evaluate_checkpoint(checkpoint_path(args.checkpoint), args.data, args.split, device,
                                                 args.precision, args.batch_size, args.bptt)
    loss = result["loss"]
    return print_result(args, result, f"{args.split} perplexity {perplexity(loss):.2f} (loss {loss:.4f} nats/token "
                                      f"over {result['tokens']:,} tokens)")
