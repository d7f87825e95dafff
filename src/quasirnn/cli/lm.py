"""``quasirnn lm train`` and ``quasirnn lm eval``: word-level language modeling (QRNN §3.2).

Train::

    quasirnn lm train [--data DIR] [--cell qrnn|lstm|sru] [--emb-size E] [--hidden-size H] ...
                      [--epochs N] [--max-steps S] [--time-budget MINUTES] [--out DIR]
    quasirnn lm train --resume OUT_DIR [--epochs N] [--max-steps S] [--time-budget MINUTES]
    quasirnn lm train --preset awd-qrnn-ptb|awd-qrnn-wt2|awd-qrnn-wt103 --data DIR [any option to override]

``--softmax adaptive`` (or ``auto`` from 20,000 words) replaces the decoder by an adaptive softmax
(tied to the embedding as AWD-QRNN's split softmax); perplexities stay exact. ``--preset`` starts
from an AWD-QRNN recipe (:mod:`quasirnn.cli.lm_presets`).

Each epoch walks the training stream in (bptt, B) windows with truncated backpropagation
through time, then reports validation perplexity and saves a checkpoint (also every
``--checkpoint-every`` steps); the end of the run (all epochs, ``--max-steps``,
``--time-budget`` or Ctrl-C) evaluates validation and test perplexity and writes
``OUT/metrics.json`` and ``OUT/checkpoint.pt`` (both atomically); ``OUT/log.jsonl`` records
every step. Ctrl-C exits with status 130 after that; SIGTERM saves a checkpoint and exits with
status 143. ``--resume OUT_DIR`` continues a run, mid-epoch included, with the configuration
stored in its checkpoint (only the run-length options, the device, the data directory and the
logging options may change).
The loop is :class:`quasirnn.training.Trainer` with :class:`quasirnn.tasks.LanguageModelTask`.

Distributed::

    torchrun --nproc_per_node N -m quasirnn.cli.main lm train ...

runs N ranks; ``--batch-size`` stays the global batch and each rank trains on its share of the
columns.

Evaluate::

    quasirnn lm eval --checkpoint OUT_DIR/checkpoint.pt [--data DIR] [--split test|valid]

recomputes the perplexity the training run reported, with the checkpoint's vocabulary,
evaluation batch size and bptt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from quasirnn.checkpoint_file import load_checkpoint, load_module_state
from quasirnn.cli.common import add_device_options, add_model_options, add_optimisation_options, add_output_options
from quasirnn.cli.common import add_run_options, checkpoint_path, config_from_args, positive_int, run_training
from quasirnn.cli.common import setup_device, start_or_resume
from quasirnn.cli.lm_presets import PRESETS
from quasirnn.cli.lm_softmax import ADAPTIVE_FROM, cutoff_list, resolve_softmax
from quasirnn.cli.precision import add_precision_option, autocast, check_precision
from quasirnn.data import Vocabulary, batchify, encode_file, find_split_file, load_corpus
from quasirnn.data.download import resolve_data_dir
from quasirnn.data.lm_corpus import has_corpus
from quasirnn.errors import ConfigError, DataError
from quasirnn.models import CELLS, SOFTMAXES, LanguageModel, evaluate
from quasirnn.models.presets import legacy_windows
from quasirnn.tasks.language_model import LanguageModelTask, lm_loss, perplexity
from quasirnn.training import Distributed
from quasirnn.training.device import keep_freed_memory, resolve_device
from quasirnn.training.optim import optimizer_step
from quasirnn.training.runlog import finite

__all__ = ["LMConfig", "add_parser", "build_model", "keep_freed_memory", "resolve_device", "run_eval", "run_train", "train_step"]

KIND = "language_model"


@dataclass
class LMConfig:
    """Configuration of a language-model training run (plain values; stored in the checkpoint).

    The defaults train a 3-layer model on the Penn Treebank on a 2-core CPU in about 20
    minutes (``time_budget``). Measured on a 2-core AMD EPYC (torch 2.13 CPU): qrnn ≈ 5,000
    training tokens/s, 6.4 epochs, validation/test perplexity 117.5/112.9; lstm ≈ 2,900
    tokens/s, 3.7 epochs, 228.9/218.0 (its 3 layers sit on the unigram plateau for most of
    the first two epochs). ``window`` is the QRNN convolution width of the first layer (the
    others use 1, as AWD-QRNN), or a list with one width per layer. ``softmax`` "auto" is the
    full softmax below :data:`ADAPTIVE_FROM` words (PTB) and the adaptive one from there on
    (or whenever ``cutoffs`` are given); ``cutoffs`` None = :func:`~quasirnn.models.default_cutoffs`
    of the training counts. Both are resolved when the run starts and stored resolved.
    ``preset`` names the recipe of :data:`quasirnn.cli.lm_presets.PRESETS` the run started from
    (its values are already in the other fields).
    """

    # model
    preset: Optional[str] = None
    cell: str = "qrnn"
    emb_size: int = 200
    hidden_size: int = 600
    num_layers: int = 3
    window: Union[int, list[int]] = 2
    zoneout: float = 0.0
    dropout: float = 0.3
    dropouth: float = 0.2
    dropouti: float = 0.3
    dropoute: float = 0.05
    tie_weights: bool = True
    softmax: str = "auto"
    cutoffs: Optional[list[int]] = None
    # optimisation
    bptt: int = 70
    variable_bptt: bool = False
    batch_size: int = 32
    eval_batch_size: int = 10
    optimizer: str = "adam"
    lr: float = 2e-3
    wdecay: float = 1.2e-6
    clip: float = 0.25
    lr_decay: float = 0.5
    lr_patience: int = 0
    seed: int = 1111
    # run length and session (may change on --resume)
    epochs: int = 40
    max_steps: Optional[int] = None
    time_budget: Optional[float] = 20.0
    checkpoint_every: int = 0
    device: str = "auto"
    precision: str = "32"
    threads: Optional[int] = None
    log_interval: int = 100
    data: Optional[str] = None


#: Config keys that a resumed run keeps from its checkpoint.
FIXED_KEYS = (
    "preset", "cell", "emb_size", "hidden_size", "num_layers", "window", "zoneout", "dropout", "dropouth", "dropouti",
    "dropoute", "tie_weights", "softmax", "cutoffs", "bptt", "variable_bptt", "batch_size", "eval_batch_size", "optimizer", "lr",
    "wdecay", "clip", "lr_decay", "lr_patience", "seed",
)
#: Config keys that a resumed run may override (run length, device, logging, data location).
SESSION_KEYS = ("epochs", "max_steps", "time_budget", "checkpoint_every", "device", "precision", "threads",
                "log_interval", "data")
#: Session keys a resumed run takes from its checkpoint unless given again (the others reset to defaults).
INHERITED_KEYS = ("epochs", "checkpoint_every")
DEFAULTS = LMConfig()


# ---------------------------------------------------------------------------- argument parsing


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``lm`` (with ``train`` and ``eval``) on the top-level sub-command set."""
    lm = commands.add_parser("lm", help="word-level language modeling (QRNN paper §3.2)",
                             description="Word-level language modeling on the Penn Treebank (QRNN paper §3.2).")
    sub = lm.add_subparsers(dest="lm_command", metavar="COMMAND", required=True)

    d = DEFAULTS
    t = sub.add_parser(
        "train",
        help="train a language model",
        description="Train a QRNN, SRU or LSTM language model; writes OUT/metrics.json and OUT/checkpoint.pt.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.set_defaults(func=run_train)
    g = t.add_argument_group("data and output")
    g.add_argument("--data", metavar="DIR", default=None,
                   help="directory with {ptb.,}{train,valid,test}.txt or wiki.*.tokens (default: $QUASIRNN_DATA/ptb, "
                        "the user cache, else download the PTB into the cache)")
    add_output_options(g, "runs/lm-CELL-TIMESTAMP")
    g = t.add_argument_group("model")
    g.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="start from an AWD-QRNN recipe (salesforce/awd-lstm-lm README: sizes, windows, dropouts, "
                        "optimiser, schedule, BPTT, epochs); options given explicitly override it. Reported test "
                        "perplexities: " + "; ".join(f"{p.name} {p.reported['test']}" for p in PRESETS.values()))
    add_model_options(g, d, CELLS, hidden="hidden size of every layer but the last, which has E when tied",
                      dropout="locked dropout on the last layer's output", dropouth="locked dropout between layers",
                      dropouti="locked dropout on the embeddings")
    g.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, default=None,
                   help=f"share embedding and decoder weights (default: {d.tie_weights})")
    g.add_argument("--softmax", choices=("auto", *SOFTMAXES), default=None,
                   help=f"output layer: full, or adaptive (tied to the embedding with --tie-weights, else torch's "
                        f"AdaptiveLogSoftmaxWithLoss); auto = adaptive from {ADAPTIVE_FROM:,} words or with "
                        f"--cutoffs (default: {d.softmax})")
    g.add_argument("--cutoffs", type=cutoff_list, default=None,
                   help="adaptive softmax cluster boundaries in frequency ranks, e.g. 2000,10000 (default: chosen "
                        "from the training word counts)")
    g = t.add_argument_group("optimisation")
    g.add_argument("--bptt", type=positive_int, default=None, help=f"BPTT window length (default: {d.bptt})")
    g.add_argument("--variable-bptt", action=argparse.BooleanOptionalAction, default=None,
                   help=f"AWD-LSTM random window lengths around --bptt (default: {d.variable_bptt})")
    add_optimisation_options(g, d, "validation perplexity")
    add_run_options(t, d)
    add_precision_option(t)
    # ArgumentDefaultsHelpFormatter would print "None"; the help strings already say the defaults
    t.formatter_class = argparse.HelpFormatter

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
    add_precision_option(e)
    return lm


# ---------------------------------------------------------------------------- helpers


def build_model(config: dict[str, Any], vocab_size: int, word_order: Optional[torch.Tensor] = None) -> LanguageModel:
    """The :class:`LanguageModel` that ``config`` (an :class:`LMConfig` as a dict) describes.

    ``word_order`` (V,) gives the adaptive softmax's frequency ranks (a checkpoint's state dict
    holds them too). A config without ``softmax`` (a checkpoint older than the option) is full;
    "auto" is resolved by the vocabulary size (see :func:`resolve_softmax`, which also picks cutoffs).

    Raises:
        ConfigError: the options do not make a valid model (e.g. zoneout with the lstm cell, an
            adaptive softmax without cutoffs).
    """
    softmax = config.get("softmax") or "full"
    if softmax == "auto":
        softmax = "adaptive" if config.get("cutoffs") is not None or vocab_size >= ADAPTIVE_FROM else "full"
    if softmax == "adaptive" and config.get("cutoffs") is None:
        raise ConfigError("the adaptive softmax needs its cutoffs: resolve them from the training ids with "
                          "resolve_softmax(config, train_ids, vocab_size) first")
    try:
        return LanguageModel(
            vocab_size,
            emb_size=config["emb_size"],
            hidden_size=config["hidden_size"],
            num_layers=config["num_layers"],
            cell=config["cell"],
            window=legacy_windows(config["window"], config["num_layers"]),
            zoneout=config["zoneout"],
            dropout=config["dropout"],
            dropouth=config["dropouth"],
            dropouti=config["dropouti"],
            dropoute=config["dropoute"],
            tie_weights=config["tie_weights"],
            softmax=softmax,
            cutoffs=config.get("cutoffs") or (),
            word_order=word_order,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# ---------------------------------------------------------------------------- training


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return config_from_args(args, dataclasses.asdict(DEFAULTS))


def _load_data(data: Optional[str], fallback: Optional[str] = None):
    if data is None and fallback is not None and has_corpus(fallback):
        data = fallback
    directory = resolve_data_dir(data)
    return load_corpus(directory)


def _start_or_resume(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]:
    """The run's configuration, output directory, and checkpoint (and its path) when resuming."""
    defaults = dataclasses.asdict(DEFAULTS)
    preset = getattr(args, "preset", None)
    if args.resume is None and preset is not None:
        defaults.update(PRESETS[preset].values, preset=preset)
        if getattr(args, "softmax", None) is not None and getattr(args, "cutoffs", None) is None:
            defaults["cutoffs"] = None  # the preset's cutoffs belong to its softmax
    cell = getattr(args, "cell", None) or defaults["cell"]
    if args.resume is None and getattr(args, "window", None) is not None and cell != "qrnn":
        raise ConfigError(f"--window is the qrnn convolution width; --cell {cell} reads one step at a time, so leave it out")
    if args.resume is not None:  # a checkpoint from before --softmax has a full softmax
        defaults.update(softmax="full", cutoffs=None)
    return start_or_resume(args, KIND, ("model", "optimizer", "vocab", "progress"), defaults,
                           (FIXED_KEYS, SESSION_KEYS, INHERITED_KEYS), "lm")


def train_step(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    hidden: Any,
    clip: float = 0.0,
    lr_scale: float = 1.0,
    precision: str = "32",
    scaler: Optional[torch.amp.GradScaler] = None,
) -> tuple[float, Any]:
    """One step of truncated BPTT (QRNN §3.2; AWD-LSTM §4.1), as ``lm train`` takes it.

    Detaches ``hidden`` from the previous window, computes the mean cross-entropy of the
    next-word predictions, backpropagates, clips the gradient norm to ``clip`` (0 = off) and
    takes an optimizer step with the learning rate multiplied by ``lr_scale`` for this step only.
    With ``precision`` "bf16"/"fp16" the forward pass runs under ``torch.autocast``; ``scaler``
    (for fp16) scales the loss and unscales the gradients before clipping.

    Args:
        inputs, targets: LongTensors (T, B); ``targets[t]`` is the word after ``inputs[t]``.
        hidden: the state the previous window returned, or None.

    Returns:
        (loss in nats per token as a float, the new hidden state, still attached to the graph).
    """
    with autocast(precision, inputs.device):
        loss, hidden = lm_loss(model, inputs, targets, hidden)
    optimizer_step(model, optimizer, loss, clip, lr_scale, scaler)
    return loss.item(), hidden


def run_train(args: argparse.Namespace) -> int:
    """``quasirnn lm train``: trains, evaluates, writes metrics.json, checkpoint.pt and log.jsonl.

    Runs as one process, or as every rank of ``torchrun --nproc_per_node N`` (each rank trains on
    its share of the batch columns; rank 0 writes the files).

    Returns:
        The exit status (0; 130 after Ctrl-C, once saved, evaluated and reported; 143 after SIGTERM, with a
        resumable checkpoint saved).

    Raises:
        DataError, CheckpointError, ConfigError, DivergedError: see the messages; printed by the CLI.
    """
    return run_training(args, _start_or_resume, _make_task)


def _make_task(config: dict[str, Any], checkpoint: Optional[dict], dist: Distributed) -> tuple[LanguageModelTask, str]:
    """The corpus (the checkpoint's vocabulary when resuming) and the seeded model, as a task."""
    check_precision(config["precision"], dist.device)
    saved_data = checkpoint["config"].get("data") if checkpoint is not None else None
    corpus = _load_data(config["data"], saved_data)
    config["data"] = str(corpus.directory.resolve())
    if checkpoint is not None and corpus.vocab.itos != list(checkpoint["vocab"]):
        raise DataError(
            f"the training split in {corpus.directory} does not give the vocabulary of the checkpoint "
            f"({len(corpus.vocab)} vs {len(checkpoint['vocab'])} words); pass the run's --data directory"
        )
    word_order = resolve_softmax(config, corpus.train, len(corpus.vocab))
    torch.manual_seed(config["seed"])
    model = build_model(config, len(corpus.vocab), word_order).to(dist.device)
    softmax = config["softmax"] + (f" {config['cutoffs']}" if config["softmax"] == "adaptive" else "")
    preset = f"{PRESETS[config['preset']].summary()}, " if config.get("preset") in PRESETS else ""
    header = (f"{preset}{config['cell']} language model: {model.num_parameters():,} parameters, vocabulary "
              f"{len(corpus.vocab):,}, {softmax} softmax, {corpus.train.numel():,} training tokens, "
              f"precision {config['precision']}")
    return LanguageModelTask(model, corpus, config, dist), header


# ---------------------------------------------------------------------------- evaluation


def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn lm eval``: prints the perplexity of a checkpoint on a split.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages; printed by the CLI.
    """
    path = checkpoint_path(args.checkpoint)
    checkpoint = load_checkpoint(path, KIND, required=("model", "vocab"))
    config = dataclasses.asdict(DEFAULTS)
    config.update(softmax="full", cutoffs=None)  # what a checkpoint without the keys used
    config.update(checkpoint["config"])
    device = setup_device(args.device, args.threads)
    precision = args.precision or "32"
    check_precision(precision, device)
    vocab = Vocabulary(checkpoint["vocab"])
    data = args.data
    if data is None and config.get("data") and has_corpus(config["data"]):
        data = config["data"]
    directory = resolve_data_dir(data)
    ids = encode_file(find_split_file(directory, args.split), vocab)

    model = build_model(config, len(vocab))
    load_module_state(model, checkpoint["model"], path)
    model.to(device)
    batch_size = args.batch_size or config["eval_batch_size"]
    bptt = args.bptt or config["bptt"]
    if ids.numel() < 2 * batch_size:
        raise DataError(f"the {args.split} split in {directory} has {ids.numel()} tokens, too few for batch size {batch_size}")
    source = batchify(ids, batch_size).to(device)
    with autocast(precision, device):
        loss, count = evaluate(model, source, bptt)
    result = {"split": args.split, "ppl": finite(perplexity(loss)), "loss": finite(loss), "tokens": count,
              "checkpoint": str(path), "data": str(directory)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split} perplexity {perplexity(loss):.2f} (loss {loss:.4f} nats/token over {count:,} tokens)")
    return 0

