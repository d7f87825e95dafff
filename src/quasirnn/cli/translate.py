"""``quasirnn translate train | eval | translate``: character-level German→English (QRNN §3.3).

Train::

    quasirnn translate train [--data DIR] [--cell qrnn|lstm] [--emb-size E] [--hidden-size H]
                             [--num-layers L] [--encoder-window K,..] [--decoder-window K,..]
                             [--max-len N] [--batch-size B] [--time-budget MINUTES] [--threads N]
                             [--checkpoint-every STEPS] [--seed S] [--out DIR]
    quasirnn translate train --resume OUT_DIR [--time-budget MINUTES] [--epochs N]

does what :data:`TRAIN_DESCRIPTION` (its ``--help``) says; Multi30k is found as
:mod:`quasirnn.cli.data_dirs` says. Under ``torchrun --nproc_per_node N`` every rank trains on its
share of each (global) batch of sentence pairs.
The loop is :class:`quasirnn.training.Trainer` with :class:`quasirnn.tasks.TranslationTask`.

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
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from quasirnn.checkpoint_file import load_checkpoint, load_module_state
from quasirnn.cli.common import (
    add_device_options,
    add_optimisation_options,
    add_output_options,
    add_run_options,
    checkpoint_path,
    nonnegative_float,
    positive_int,
    probability,
    run_training,
    setup_device,
    start_or_resume,
    window_list,
)
from quasirnn.cli.data_dirs import resolve_multi30k_dir
from quasirnn.cli.inputs import PARTIAL_FAILURE_STATUS, read_texts, report_failures
from quasirnn.data.bitext import CharVocab, ParallelSplit, find_parallel_file, read_parallel
from quasirnn.errors import CheckpointError, ConfigError, DataError
from quasirnn.models.presets import TRANSLATOR_DECODER_WINDOWS, TRANSLATOR_ENCODER_WINDOWS
from quasirnn.models.translation import TRANSLATION_CELLS, build_translator
from quasirnn.tasks.translation import TranslationData, TranslationTask, bleu, translate_lines, translation_loss
from quasirnn.training import Distributed
from quasirnn.training.optim import optimizer_step

__all__ = ["TranslateConfig", "add_parser", "bleu", "translate_lines", "run_train", "run_eval", "run_translate",
           "train_step"]

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
KIND = "translator"
SRC_LANG, TGT_LANG = "de", "en"
VAL_SPLIT, TEST_SPLIT = "val", "test_2016_flickr"


@dataclass
class TranslateConfig:
    """Configuration of a translation run (plain values; stored in the checkpoint).

    The defaults are the paper's model (§3.3): 4 layers of 320 units in the encoder and in the
    decoder, QRNN encoder windows 6 in the first layer and 2 above (``encoder_window=None``
    resolves to that pattern for any ``num_layers``), decoder windows 2 in the first layer and 1
    above; embeddings of 64, dropout 0.2, Adam 2e-3 with gradient clipping 1 and label
    smoothing 0.1, batches of 64 sentence pairs, the learning rate halved after 3 epochs
    without a better greedy validation BLEU (``lr_patience=2``). In 90 minutes on one core of
    the 2-core development machine this QRNN (4.7 M parameters, about 5,700 characters/s, 8
    epochs) reached test_2016 BLEU 33.7, above the 2×256 QRNN's 31.1 (26 epochs with
    ``lr_patience=0``); BENCHMARKS.md has both. The LSTM (``--cell lstm``) uses the same sizes.
    """

    # data
    data: Optional[str] = None
    max_len: int = 200
    limit: Optional[int] = None
    # model
    cell: str = "qrnn"
    emb_size: int = 64
    hidden_size: int = 320
    num_layers: int = 4
    encoder_window: Union[None, int, list[int]] = None  # None: the paper's 6, 2, 2, … (PAPER_WINDOWS)
    decoder_window: Union[None, int, list[int]] = None  # None: 2, 1, 1, …
    dropout: float = 0.2
    zoneout: float = 0.0
    # optimisation
    batch_size: int = 64
    eval_batch_size: int = 200
    optimizer: str = "adam"
    lr: float = 2e-3
    wdecay: float = 0.0
    clip: float = 1.0
    lr_decay: float = 0.5
    lr_patience: int = 2
    label_smoothing: float = 0.1
    seed: int = 1111
    # run length and session (may change on --resume)
    epochs: int = 100
    max_steps: Optional[int] = None
    time_budget: Optional[float] = 90.0
    checkpoint_every: int = 0
    val_limit: Optional[int] = None
    final_beam: int = 5
    device: str = "auto"
    threads: Optional[int] = None
    log_interval: int = 50


#: Keys a resumed run keeps from its checkpoint (they define the data, the model and the optimisation).
FIXED_KEYS = ("max_len", "limit", "cell", "emb_size", "hidden_size", "num_layers", "encoder_window", "decoder_window",
              "dropout", "zoneout", "batch_size", "optimizer", "lr", "wdecay", "clip", "lr_decay", "lr_patience",
              "label_smoothing", "seed")
#: Keys a resumed run may override.
SESSION_KEYS = ("data", "epochs", "max_steps", "time_budget", "checkpoint_every", "val_limit", "final_beam",
                "eval_batch_size", "device", "threads", "log_interval")
#: Session keys taken from the checkpoint unless given again (validation decides the decay and the kept weights).
INHERITED_KEYS = ("data", "epochs", "checkpoint_every", "val_limit", "final_beam", "eval_batch_size")
DEFAULTS = TranslateConfig()
#: Default QRNN windows as (first layer, every layer above) for the encoder and the decoder.
PAPER_WINDOWS = {"encoder_window": TRANSLATOR_ENCODER_WINDOWS, "decoder_window": TRANSLATOR_DECODER_WINDOWS}


def _default_windows(config: dict[str, Any]) -> None:
    """Replaces an unset (None) ``encoder_window`` / ``decoder_window`` of ``config`` by the
    :data:`PAPER_WINDOWS` pattern for its ``num_layers`` (e.g. 6, 2, 2, 2 for 4 layers)."""
    for key, preset in PAPER_WINDOWS.items():
        if config.get(key) is None:
            config[key] = list(preset.widths(config["num_layers"]))


# ---------------------------------------------------------------------------- argument parsing


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``translate`` (with ``train``, ``eval``, ``translate``) to the ``quasirnn`` sub-commands."""
    d = DEFAULTS
    p = commands.add_parser("translate", help="character-level German-English translation (QRNN paper section 3.3)",
                            description="Character-level encoder-decoder translation on Multi30k (QRNN paper section 3.3).")
    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train an encoder-decoder", description=TRAIN_DESCRIPTION)
    g = t.add_argument_group("data and output")
    g.add_argument("--data", metavar="DIR", default=None,
                   help=f"folder with {{train,val,{TEST_SPLIT}}}.{{de,en}}[.gz] (default: $QUASIRNN_DATA/multi30k, "
                        f"else the user cache's multi30k)")
    g.add_argument("--max-len", type=positive_int, default=None,
                   help=f"drop training pairs longer than this many characters; also the longest output (default: {d.max_len})")
    g.add_argument("--limit", type=positive_int, default=None, help="use only the first N training pairs")
    add_output_options(g, "runs/translate-CELL-TIMESTAMP")
    g = t.add_argument_group("model")
    g.add_argument("--cell", choices=TRANSLATION_CELLS, default=None,
                   help=f"recurrent layer of the encoder and the decoder (default: {d.cell})")
    g.add_argument("--emb-size", type=positive_int, default=None, help=f"character embedding size (default: {d.emb_size})")
    g.add_argument("--hidden-size", type=positive_int, default=None, help=f"units per layer (default: {d.hidden_size})")
    g.add_argument("--num-layers", type=positive_int, default=None,
                   help=f"layers of the encoder and of the decoder (default: {d.num_layers})")
    g.add_argument("--encoder-window", type=window_list, default=None,
                   help=f"qrnn encoder convolution width of the first layer (others 1), or one per layer "
                        f"(default: {PAPER_WINDOWS['encoder_window'][0]} in the first layer, "
                        f"{PAPER_WINDOWS['encoder_window'][1]} above)")
    g.add_argument("--decoder-window", type=window_list, default=None,
                   help=f"the same for the decoder (default: {PAPER_WINDOWS['decoder_window'][0]} in the first "
                        f"layer, {PAPER_WINDOWS['decoder_window'][1]} above)")
    g.add_argument("--dropout", type=probability, default=None,
                   help=f"dropout on the embeddings and between layers (default: {d.dropout})")
    g.add_argument("--zoneout", type=probability, default=None, help=f"qrnn zoneout probability (default: {d.zoneout})")
    g = t.add_argument_group("optimisation")
    add_optimisation_options(g, d, "validation BLEU", batch="sentence pairs per (global) batch")
    g.add_argument("--label-smoothing", type=probability, default=None,
                   help=f"label smoothing of the training cross-entropy (default: {d.label_smoothing})")
    g = t.add_argument_group("evaluation (can change on --resume)")
    g.add_argument("--val-limit", type=positive_int, default=None,
                   help="validate on the first N validation pairs only (default: all)")
    g.add_argument("--final-beam", type=positive_int, default=None,
                   help=f"beam size of the final validation/test translation (default: {d.final_beam})")
    add_run_options(t, d)
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


# ---------------------------------------------------------------------------- pieces


def train_step(model, optimizer: torch.optim.Optimizer, src, src_len, tgt, clip: float, label_smoothing: float) -> float:
    """One teacher-forced step as ``translate train`` takes it (:func:`quasirnn.tasks.translation.translation_loss`,
    backward, gradient clipping to ``clip`` (0 = off), optimizer step).

    Args:
        src: LongTensor (S, B) right-padded; src_len (B,); tgt LongTensor (T, B) ending in ``<eos>``, padded.

    Returns:
        The mean (label-smoothed) cross-entropy over the real target characters, in nats.
    """
    loss = translation_loss(model, src, src_len, tgt, label_smoothing)
    optimizer_step(model, optimizer, loss, clip)
    return loss.item()


def _load_split(directory: Path, split: str, limit: Optional[int] = None) -> tuple[list[str], list[str]]:
    return read_parallel(find_parallel_file(directory, split, SRC_LANG), find_parallel_file(directory, split, TGT_LANG),
                         limit)


def _upgrade_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """Gives a checkpoint of translate's own loop (before the shared trainer: ``counters``, no
    ``progress``) the trainer's layout, so that such runs resume where they stopped.

    Raises:
        CheckpointError: the checkpoint has neither layout.
    """
    if "progress" in checkpoint:
        return
    if "counters" not in checkpoint:
        raise CheckpointError(f"{path} is incomplete: missing progress")
    c, history = checkpoint["counters"], checkpoint.get("history", [])
    checkpoint["progress"] = {"epoch": c["epoch"], "position": c["batch_in_epoch"], "step": c["step"],
                              "train_tokens": c["train_chars"], "train_time_s": c["train_s"], "history": history,
                              "best_val_bleu": c["best_bleu"]}
    best_step = next((h["step"] for h in history if h.get("val_bleu") == c["best_bleu"]), c["step"])
    checkpoint["best"] = {"val_bleu": c["best_bleu"], "step": best_step if c["best_bleu"] >= 0 else -1}


def _start_or_resume(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]:
    """The run's configuration, output directory, and checkpoint (and its path) when resuming."""
    config, out, checkpoint, path = start_or_resume(
        args, KIND, ("model", "best_model", "optimizer", "src_vocab", "tgt_vocab"), dataclasses.asdict(DEFAULTS),
        (FIXED_KEYS, SESSION_KEYS, INHERITED_KEYS), "translate", prepare=_default_windows)
    if checkpoint is not None:
        _upgrade_checkpoint(checkpoint, path)
        if "lr_patience" not in checkpoint["config"]:  # saved before --lr-patience: no patience
            config["lr_patience"] = 0
    return config, out, checkpoint, path


# ---------------------------------------------------------------------------- train


def run_train(args: argparse.Namespace) -> int:
    """``quasirnn translate train``: trains, evaluates, writes metrics.json, checkpoint.pt and log.jsonl.

    Runs as one process, or as every rank of ``torchrun --nproc_per_node N`` (each rank trains on
    its share of every batch of sentence pairs; rank 0 writes the files).

    Returns:
        The exit status (0; 130 after Ctrl-C, once saved, evaluated and reported; 143 after SIGTERM, with a
        resumable checkpoint saved).

    Raises:
        DataError, CheckpointError, ConfigError, DivergedError: see the messages; printed by the CLI.
    """
    return run_training(args, _start_or_resume, _make_task)


def _make_task(config: dict[str, Any], checkpoint: Optional[dict], dist: Distributed) -> tuple[TranslationTask, str]:
    """The sentence pairs (the checkpoint's vocabularies when resuming) and the seeded model, as a task."""
    directory = resolve_multi30k_dir(config["data"])
    train_src, train_tgt = _load_split(directory, "train", config["limit"])
    val_src, val_tgt = _load_split(directory, VAL_SPLIT, config["val_limit"])
    test_src, test_tgt = _load_split(directory, TEST_SPLIT)
    config["data"] = str(directory.resolve())
    if checkpoint is not None:
        src_vocab, tgt_vocab = CharVocab(checkpoint["src_vocab"]), CharVocab(checkpoint["tgt_vocab"])
    else:
        src_vocab, tgt_vocab = CharVocab.build(train_src), CharVocab.build(train_tgt)
    train = ParallelSplit.encode(train_src, train_tgt, src_vocab, tgt_vocab, config["max_len"])
    if len(train) == 0:
        raise DataError(f"{directory}: no training pair has at most --max-len {config['max_len']} characters")
    data = TranslationData(train, val_src, val_tgt, test_src, test_tgt, src_vocab, tgt_vocab, TEST_SPLIT)
    torch.manual_seed(config["seed"])
    try:
        model = build_translator(config, len(src_vocab), len(tgt_vocab)).to(dist.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    header = (f"{config['cell']} translator: {model.num_parameters():,} parameters, {len(train):,} training pairs "
              f"({train.num_chars():,} characters), vocab {SRC_LANG} {len(src_vocab)} / {TGT_LANG} {len(tgt_vocab)}")
    return TranslationTask(model, data, config, dist), header


# ---------------------------------------------------------------------------- eval / translate


def _load_for_inference(args: argparse.Namespace):
    path = checkpoint_path(args.checkpoint)
    checkpoint = load_checkpoint(path, KIND, required=("model", "best_model", "src_vocab", "tgt_vocab"))
    config = checkpoint["config"]
    device = setup_device(args.device, args.threads)
    src_vocab, tgt_vocab = CharVocab(checkpoint["src_vocab"]), CharVocab(checkpoint["tgt_vocab"])
    model = build_translator(config, len(src_vocab), len(tgt_vocab))
    load_module_state(model, checkpoint["best_model" if args.weights == "best" else "model"], path)
    model.to(device).eval()
    max_len = args.max_len or config["max_len"]
    return model, config, src_vocab, tgt_vocab, device, max_len


def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn translate eval``: BLEU of a checkpoint's translations of one split."""
    model, config, src_vocab, tgt_vocab, device, max_len = _load_for_inference(args)
    data = resolve_multi30k_dir(args.data if args.data is not None else config.get("data"))
    src, tgt = _load_split(data, args.split)
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
