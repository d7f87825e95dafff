"""``quasirnn lm train | finetune | eval | generate``: word-level language modeling (QRNN §3.2), its parsing
and printing.

``lm train --help`` lists the options: the fields of
:class:`~quasirnn.experiments.language_model.LMConfig`, and ``--preset``, an AWD-QRNN recipe of
:mod:`~quasirnn.experiments.language_model.presets`. The run is :class:`quasirnn.training.Trainer`
with :class:`~quasirnn.experiments.language_model.LanguageModelTask`, in one process or on every
rank of ``torchrun --nproc_per_node N -m quasirnn.cli.main lm train ...`` (``--batch-size`` stays
the global batch). ``lm finetune`` trains a trained run further as awd-lstm-lm's ``finetune.py``
does (:mod:`~quasirnn.experiments.language_model.finetune`), into a new run. ``lm eval``
recomputes the perplexity a run reported, with the checkpoint's vocabulary, weights, evaluation
batch size, bptt and precision; ``lm eval --cache-pointer`` adds the neural cache
(:mod:`~quasirnn.experiments.language_model.cache_pointer`). ``lm generate`` samples text from a
run (:class:`~quasirnn.experiments.language_model.generate.TextGenerator`), streaming each word
as it comes. ``lm export --hf DIR`` writes a run as a Hugging Face folder (:mod:`quasirnn.hf.export`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Callable, Iterable

from quasirnn.cli.common import (add_command_group, add_config_options, add_device_options, add_quantize_option,
                                 add_train_parser, given_options, print_result, show_progress_bar)
from quasirnn.cli.export import add_export_parser
from quasirnn.errors import ConfigError
from quasirnn.experiments.language_model import (EXPERIMENT, PRESETS, cache_defaults, evaluate_checkpoint,
                                                 evaluate_checkpoint_with_cache, perplexity, start_finetune)
from quasirnn.experiments.language_model.generate import DTYPES, TextGenerator, check_sampling
from quasirnn.training.device import setup_device
from quasirnn.training.config import SESSION
from quasirnn.training.launch import checkpoint_path, run_training, start_or_resume
from quasirnn.training.options import DATA, MODEL, positive_int
from quasirnn.training.precision import PRECISION_HELP, PRECISION_METAVAR

__all__ = ["FINETUNE_OPTIONS", "add_parser", "run_eval", "run_finetune", "run_generate"]

#: The configuration fields ``lm finetune`` takes (the others are the trained run's).
FINETUNE_OPTIONS = ("data", "epochs", "max_steps", "time_budget", "checkpoint_every", "seed", "lr", "nonmono",
                    "device", "threads", "log_interval", "precision")


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``lm`` (with ``train``, ``finetune``, ``eval`` and ``generate``) on the top-level sub-command set."""
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
    c = e.add_argument_group("neural cache (Grave et al. 2017; awd-lstm-lm pointer.py)")
    c.add_argument("--cache-pointer", action="store_true",
                   help="mix the model's distribution with a cache of its last-layer outputs and the words that "
                        "followed them; the split is one stream (batch size 1); prints the cached perplexity, "
                        "--json both")
    ptb = cache_defaults(None)
    c.add_argument("--cache-window", type=int, metavar="N", default=None,
                   help=f"previous positions the cache holds (default: the run's preset's, else PTB's {ptb.window})")
    c.add_argument("--cache-theta", type=float, metavar="T", default=None,
                   help=f"flatness θ of the cache's distribution (default: the preset's, else {ptb.theta:g})")
    c.add_argument("--cache-lambda", type=float, metavar="L", default=None,
                   help=f"the cache's share λ of the mixture (default: the preset's, else {ptb.lambd:g})")
    add_device_options(e)
    e.add_argument("--precision", metavar=PRECISION_METAVAR, default=None,
                   help=PRECISION_HELP.replace("{default}", "the run's"))
    add_quantize_option(e)
    _add_generate_parser(sub)
    add_export_parser(sub, "lm", "language model", "model.safetensors (the weights its test used) and a word-level "
                      "tokenizer of its vocabulary")
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
    if args.cache_pointer:
        return _run_cache_eval(args)
    for name in ("cache_window", "cache_theta", "cache_lambda"):
        if getattr(args, name) is not None:
            raise ConfigError(f"--{name.replace('_', '-')} is a setting of the neural cache: add --cache-pointer")
    device = setup_device(args.device, args.threads)
    result: dict[str, Any] = evaluate_checkpoint(checkpoint_path(args.checkpoint), args.data, args.split, device,
                                                 args.precision, args.batch_size, args.bptt, args.quantize)
    loss = result["loss"]
    return print_result(args, result, f"{args.split} perplexity {perplexity(loss):.2f} (loss {loss:.4f} nats/token "
                                      f"over {result['tokens']:,} tokens)")


def _run_cache_eval(args: argparse.Namespace) -> int:
    """``lm eval --cache-pointer``: prints the perplexity with the neural cache (and, with ``--json``, without)."""
    if args.batch_size is not None:
        raise ConfigError("--cache-pointer evaluates the split as one stream (batch size 1, as pointer.py): "
                          "leave --batch-size out")
    device = setup_device(args.device, args.threads)
    result = evaluate_checkpoint_with_cache(checkpoint_path(args.checkpoint), args.data, args.split, device,
                                            args.precision, args.bptt, args.cache_window, args.cache_theta,
                                            args.cache_lambda, args.quantize)
    cache = result["cache"]
    loss, plain = (math.inf if x is None else x for x in (result["loss"], result["plain_loss"]))  # None: not finite
    return print_result(args, result, f"{args.split} perplexity {perplexity(loss):.2f} with the neural cache (window "
                                      f"{cache['window']}, theta {cache['theta']:g}, lambda {cache['lambda']:g}), "
                                      f"{perplexity(plain):.2f} without (loss {loss:.4f} nats/token over "
                                      f"{result['tokens']:,} tokens, batch size 1)")


def _sampling_value(name: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, checked by the rule of
    :func:`~quasirnn.models.sampling.check_sampling` for ``name``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            check_sampling(**{name: value})
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{name} ")) from None
        return value

    return parse


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "generate", help="sample text from a trained language model",
        description="Continue a prompt with words sampled from a trained language model, printed as they come "
                    "(one step of every layer per word). Words are separated by spaces and <eos> ends the line. "
                    "Without --prompt, the prompts are read from stdin, one a line (to its end, first); each "
                    "starts from the zero state, and their continuations follow in order, separated by an empty "
                    "line. Every continuation ends with a line break. A prompt word outside the vocabulary is "
                    "read as <unk> (one warning on stderr lists them).")
    g.set_defaults(func=run_generate)
    g.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file, or a run's output directory")
    g.add_argument("--prompt", metavar="TEXT", default=None,
                   help="the text to continue, words separated by spaces; empty: a new sentence (default: the "
                        "lines of stdin)")
    g.add_argument("--words", type=positive_int, default=50, help="words generated per prompt (default: 50)")
    g.add_argument("--temperature", type=_sampling_value("temperature", float), default=1.0,
                   help="divides the scores before the softmax: below 1 sharper, above 1 flatter (default: 1)")
    g.add_argument("--top-k", type=positive_int, default=None,
                   help="sample among the K most probable words only; 1: greedy, the seed unused (default: all)")
    g.add_argument("--top-p", type=_sampling_value("top_p", float), default=None, metavar="P",
                   help="nucleus sampling: among the most probable words whose probabilities sum to P, in (0, 1] "
                        "(default: all)")
    g.add_argument("--seed", type=int, default=None, help="random seed; the same seed gives the same text "
                                                          "(default: a random one)")
    g.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="the weights' dtype: a step reads every weight once, so float16 halves its time on a CPU, "
                        "the log-probabilities moved by about 1e-3 (default: float32)")
    add_quantize_option(g)
    add_device_options(g)


def run_generate(args: argparse.Namespace) -> int:
    """``quasirnn lm generate``: prints the continuation of each prompt, word by word.

    Raises:
        CheckpointError, ConfigError: see the messages; printed by the CLI.
    """
    device = setup_device(args.device, args.threads)
    generator = TextGenerator.load(args.checkpoint, device, args.seed, args.dtype, quantize=args.quantize)
    prompts = [args.prompt] if args.prompt is not None else [line.rstrip("\r\n") for line in sys.stdin]
    unknown = generator.unknown_words(prompts)
    if unknown:
        print(f"quasirnn: warning: {len(unknown)} prompt word{'s' if len(unknown) > 1 else ''} not in the "
              f"vocabulary, read as {generator.unk}: {' '.join(unknown)}", file=sys.stderr, flush=True)
    for i, prompt in enumerate(prompts):
        if i:
            print(flush=True)
        _stream(generator.continuation(prompt, args.words, args.temperature, args.top_k, args.top_p), generator.eos)
    return 0


def _stream(words: Iterable[str], eos: str) -> None:
    """Prints ``words`` separated by spaces, ``eos`` as a line break, flushing after each; ends with a line break."""
    out = sys.stdout
    line_start = True
    for word in words:
        out.write("\n" if word == eos else word if line_start else " " + word)
        line_start = word == eos
        out.flush()
    if not line_start:
        out.write("\n")
        out.flush()
