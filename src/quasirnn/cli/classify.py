"""``quasirnn classify train | eval | predict``: IMDb sentiment classification (QRNN §3.1).

Train::

    quasirnn classify train --data ../shared/data/imdb/aclImdb_labeled.tar.xz [--cell qrnn|lstm]
                            [--emb-size E] [--hidden-size H] [--num-layers L] [--max-vocab V]
                            [--max-len T] [--epochs N] [--time-budget MINUTES] [--seed S] [--out DIR]
    quasirnn classify train --resume OUT_DIR [--epochs N] [--time-budget MINUTES]

reads the archive (or an extracted ``aclImdb/``), carves a fixed validation set out of the 25k
training reviews, builds the vocabulary from the rest, and trains a densely connected QRNN (or
LSTM) classifier on length-bucketed, right-padded batches. After every epoch it measures
validation accuracy, keeps the weights with the best one, and writes ``OUT/checkpoint.pt``
and ``OUT/metrics.json`` atomically. At the end (all epochs, ``--max-steps``,
``--time-budget`` or Ctrl-C) the best-validation weights are evaluated on the 25k test
reviews. ``--resume OUT_DIR`` continues a run, mid-epoch included, with its stored
configuration (only the run length, device, data location and logging may change).

Evaluate and predict::

    quasirnn classify eval --checkpoint OUT_DIR [--split test|val] [--json]
    quasirnn classify predict --checkpoint OUT_DIR "some review text" ["another review" ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F

from quasirnn.checkpoint import atomic_write_text, load_checkpoint, load_module_state, save_checkpoint
from quasirnn.cli.common import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    Limits,
    Log,
    add_device_options,
    add_model_options,
    add_optimisation_options,
    add_output_options,
    add_run_options,
    checkpoint_path,
    epoch_bar,
    finite,
    make_optimizer,
    positive_int,
    rng_state,
    run_record,
    set_rng_state,
    setup_device,
    show_progress_bar,
    start_or_resume,
)
from quasirnn.data import Vocabulary
from quasirnn.data.imdb import LABELS, EncodedSplit, ImdbData, encode, load_imdb, tokenize
from quasirnn.errors import CheckpointError, ConfigError, DataError
from quasirnn.models import CELLS, TextClassifier, evaluate_classifier
from quasirnn.models.classifier import POOLINGS

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
    seed: int = 1111
    # run length and session (may change on --resume)
    epochs: int = 30
    max_steps: Optional[int] = None
    time_budget: Optional[float] = 60.0
    device: str = "auto"
    threads: Optional[int] = None
    log_interval: int = 50


#: Keys a resumed run keeps from its checkpoint (they define the data, the model and the optimisation).
FIXED_KEYS = (
    "max_vocab", "max_len", "val_size", "limit", "cell", "emb_size", "hidden_size", "num_layers", "window", "dense",
    "pooling", "zoneout", "dropout", "dropouth", "dropouti", "dropoute", "batch_size", "eval_batch_size", "optimizer",
    "lr", "wdecay", "clip", "lr_decay", "seed",
)
#: Keys a resumed run may override.
SESSION_KEYS = ("epochs", "max_steps", "time_budget", "device", "threads", "log_interval", "data")
#: Session keys taken from the checkpoint unless given again.
INHERITED_KEYS = ("epochs", "data")
DEFAULTS = ClassifyConfig()


# ---------------------------------------------------------------------------- argument parsing


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``classify`` (with ``train``, ``eval`` and ``predict``) on the top-level sub-commands."""
    top = commands.add_parser("classify", help="IMDb sentiment classification (QRNN paper §3.1)",
                              description="Document classification on IMDb movie reviews (QRNN paper §3.1).")
    sub = top.add_subparsers(dest="classify_command", metavar="COMMAND", required=True)
    d = DEFAULTS

    t = sub.add_parser("train", help="train a sentiment classifier",
                       description="Train a dense QRNN or LSTM classifier; writes OUT/metrics.json and OUT/checkpoint.pt.")
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
                       description="Print the predicted label and its probability for each text.")
    p.set_defaults(func=run_predict)
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file, or a run's output directory")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="review text(s) to classify")
    p.add_argument("--json", action="store_true", help="one JSON object per text")
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
            num_layers=config["num_layers"], num_classes=len(LABELS), cell=config["cell"], window=config["window"],
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


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The batch order of an epoch depends only on (seed, epoch), so a resumed run can skip ahead."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def train_step(model: TextClassifier, optimizer: torch.optim.Optimizer, ids: torch.Tensor, lengths: torch.Tensor,
               labels: torch.Tensor, clip: float = 0.0) -> tuple[float, int]:
    """One optimizer step on a padded batch: mean cross-entropy, backward, clip, step.

    Args:
        ids: LongTensor (T, B) right-padded; lengths (B,); labels LongTensor (B,).
        clip: gradient-norm clipping, 0 = off.

    Returns:
        (loss in nats per review, number of correct predictions in the batch).
    """
    logits = model(ids, lengths)  # (B, C)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item(), int((logits.argmax(-1) == labels).sum())


@dataclass
class _Progress:
    """Counters of a run, saved in the checkpoint."""

    epoch: int = 0  # completed epochs
    position: int = 0  # batches done in the current epoch
    step: int = 0
    train_examples: int = 0
    train_tokens: int = 0
    train_time_s: float = 0.0
    best_val_accuracy: float = -1.0  # over every validation: selects the weights that are tested
    best_step: int = -1
    best_epoch_val_accuracy: float = -1.0  # over end-of-epoch validations only: drives the learning-rate decay
    history: list = field(default_factory=list)


def _start_or_resume(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]:
    """The run's configuration, output directory, and checkpoint (and its path) when resuming."""
    return start_or_resume(args, KIND, ("model", "best_model", "optimizer", "vocab", "progress"),
                           dataclasses.asdict(DEFAULTS), (FIXED_KEYS, SESSION_KEYS, INHERITED_KEYS), "imdb", _validate)


def _restore(checkpoint: dict, path: Path, model: TextClassifier, optimizer: torch.optim.Optimizer,
             device: torch.device) -> tuple[_Progress, dict]:
    """Loads weights, optimizer and RNG state; returns the progress and the best weights."""
    load_module_state(model, checkpoint["model"], path)
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
        progress = _Progress(**checkpoint["progress"])
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: optimizer state or progress record does not match the model: {exc}") from None
    if "rng" in checkpoint:
        set_rng_state(checkpoint["rng"], device)
    return progress, checkpoint["best_model"]


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------- training


def run_train(args: argparse.Namespace) -> int:
    """``quasirnn classify train``: trains, evaluates, writes metrics.json and checkpoint.pt.

    Raises:
        DataError, CheckpointError, ConfigError: see the messages; printed by the CLI.
    """
    wall_start = time.perf_counter()
    config, out, checkpoint, ckpt_path = _start_or_resume(args)
    device = setup_device(config["device"], config["threads"])
    show_bar = show_progress_bar(args)
    log = Log(show_bar)

    data = _load_data(config)
    config["data"] = str(data.source.resolve())
    if checkpoint is not None and data.vocab.itos != list(checkpoint["vocab"]):
        raise DataError(f"the training reviews in {data.source} do not give the vocabulary of the checkpoint "
                        f"({len(data.vocab):,} vs {len(checkpoint['vocab']):,} words); pass the run's --data")

    torch.manual_seed(config["seed"])
    model = build_classifier(config, len(data.vocab)).to(device)
    optimizer = make_optimizer(config, model)
    progress, best_state = _Progress(), None
    if checkpoint is not None:
        progress, best_state = _restore(checkpoint, ckpt_path, model, optimizer, device)

    n_params = model.num_parameters()
    log(f"{'resuming' if checkpoint is not None else 'training'} {config['cell']} classifier: {n_params:,} parameters, "
        f"vocabulary {len(data.vocab):,}, {len(data.train):,} train / {len(data.val):,} val / {len(data.test):,} test "
        f"reviews, device {device}, {torch.get_num_threads()} threads, output {out}")

    limits = Limits(config["max_steps"], config["time_budget"])
    batch_size = config["batch_size"]
    batches_per_epoch = data.train.num_batches(batch_size)
    stop_reason = None
    val_accuracy = val_loss = math.nan
    last_eval_step = None

    def metrics(test: Optional[tuple[float, float]], finished: bool) -> dict[str, Any]:
        return {
            "kind": KIND,
            "cell": config["cell"],
            "val_accuracy": finite(progress.best_val_accuracy) if progress.best_step >= 0 else None,
            "test_accuracy": None if test is None else finite(test[0]),
            "test_loss": None if test is None else finite(test[1]),
            "last_val_accuracy": finite(val_accuracy),
            "last_val_loss": finite(val_loss),
            "best_step": progress.best_step if progress.best_step >= 0 else None,
            "train_examples_per_s": progress.train_examples / progress.train_time_s if progress.train_time_s else None,
            "train_tokens_per_s": progress.train_tokens / progress.train_time_s if progress.train_time_s else None,
            "params": n_params,
            "vocab_size": len(data.vocab),
            "reviews": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "steps": progress.step,
            "epochs": round(progress.epoch + progress.position / max(1, batches_per_epoch), 4),
            "epochs_completed": progress.epoch,
            "train_examples": progress.train_examples,
            "train_time_s": progress.train_time_s,
            **run_record(config, device, wall_start, stop_reason, finished, progress.history),
        }

    def save(m: dict[str, Any]) -> None:
        save_checkpoint(out / CHECKPOINT_NAME, KIND, config, model=model.state_dict(),
                        best_model=best_state if best_state is not None else _state_copy(model),
                        optimizer=optimizer.state_dict(), vocab=list(data.vocab.itos),
                        progress=dataclasses.asdict(progress), rng=rng_state(device), metrics=m)
        atomic_write_text(out / METRICS_NAME, json.dumps(m, indent=2) + "\n")

    def validate() -> None:
        """Validation accuracy of the current weights; keeps them when they are the best so far."""
        nonlocal val_accuracy, val_loss, last_eval_step, best_state
        val_accuracy, val_loss = _evaluate(model, data.val, config["eval_batch_size"], device)
        last_eval_step = progress.step
        if not val_accuracy <= progress.best_val_accuracy:  # NaN (no validation set): the latest weights
            progress.best_val_accuracy, progress.best_step = val_accuracy, progress.step
            best_state = _state_copy(model)

    out.mkdir(parents=True, exist_ok=True)
    try:
        while progress.epoch < config["epochs"]:
            stop_reason = limits.reached(progress.step)
            if stop_reason is not None:
                break
            model.train()
            bar = epoch_bar(batches_per_epoch, progress.position, progress.epoch, config["epochs"], show_bar)
            window = [0.0, 0, 0, 0, 0.0]  # loss sum, steps, examples, correct, seconds
            order = _epoch_generator(config["seed"], progress.epoch)
            for ids, lengths, labels in _batches(data.train, batch_size, device, shuffle=True, generator=order,
                                                 start=progress.position):
                t0 = time.perf_counter()
                loss, correct = train_step(model, optimizer, ids, lengths, labels, config["clip"])
                dt = time.perf_counter() - t0
                progress.step += 1
                progress.position += 1
                progress.train_examples += labels.numel()
                progress.train_tokens += int(lengths.sum())
                progress.train_time_s += dt
                limits.spend(dt)
                window = [window[0] + loss, window[1] + 1, window[2] + labels.numel(), window[3] + correct, window[4] + dt]
                bar.update(1)
                if not math.isfinite(loss):
                    stop_reason = "diverged"
                    break
                if window[1] >= (10 if show_bar else config["log_interval"]):
                    avg, acc, rate = window[0] / window[1], window[3] / window[2], window[2] / window[4]
                    if show_bar:
                        bar.set_postfix(loss=f"{avg:.3f}", acc=f"{acc:.3f}", ex_s=f"{rate:,.1f}", refresh=False)
                    elif not args.quiet:
                        log(f"epoch {progress.epoch + 1} step {progress.step} ({progress.position}/{batches_per_epoch}) | "
                            f"loss {avg:.3f} | train acc {acc:.3f} | {rate:,.1f} reviews/s | "
                            f"lr {optimizer.param_groups[0]['lr']:.2e}")
                    window = [0.0, 0, 0, 0, 0.0]
                stop_reason = limits.reached(progress.step)
                if stop_reason is not None:
                    break
            bar.close()
            if stop_reason is not None:
                break
            progress.epoch += 1
            progress.position = 0
            validate()
            # the decay compares end-of-epoch results only, so a run resumed mid-epoch decays like a straight one
            improved = not val_accuracy <= progress.best_epoch_val_accuracy
            if improved:
                progress.best_epoch_val_accuracy = val_accuracy
            elif config["lr_decay"] < 1:
                for group in optimizer.param_groups:
                    group["lr"] *= config["lr_decay"]
            progress.history.append({"epoch": progress.epoch, "step": progress.step, "val_accuracy": finite(val_accuracy),
                                     "val_loss": finite(val_loss), "lr": optimizer.param_groups[0]["lr"],
                                     "train_time_s": round(progress.train_time_s, 3)})
            rate = progress.train_examples / progress.train_time_s if progress.train_time_s else 0.0
            log(f"epoch {progress.epoch} | val accuracy {val_accuracy:.4f}{'' if improved else ' (no improvement)'} | "
                f"step {progress.step} | {rate:,.1f} reviews/s | train time {progress.train_time_s:.0f} s")
            save(metrics(None, finished=False))
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        log("interrupted: evaluating and saving (Ctrl-C again to abort)")

    if stop_reason is None:
        stop_reason = "epochs"
    if last_eval_step != progress.step:  # stopped mid-epoch: the current weights may be the best
        validate()
    last_state = _state_copy(model)
    model.load_state_dict(best_state)
    test = _evaluate(model, data.test, config["eval_batch_size"], device)
    model.load_state_dict(last_state)
    final = metrics(test, finished=True)
    save(final)
    rate = final["train_examples_per_s"] or 0.0
    print(f"done ({stop_reason}) after {progress.step} steps, {final['epochs']:.2f} epochs | "
          f"val accuracy {progress.best_val_accuracy:.4f} | test accuracy {test[0]:.4f} | {rate:,.1f} reviews/s | "
          f"saved {out}", flush=True)
    return 0


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

    Raises:
        CheckpointError: see the messages. DataError: an empty text (no token after tokenization).
    """
    token_lists = [tokenize(text) for text in args.texts]
    for i, tokens in enumerate(token_lists):
        if not tokens:
            which = "the text" if len(args.texts) == 1 else f"text {i + 1}"
            raise DataError(f"{which} to classify is empty: give a review with at least one word")
    _, config, vocab, model, device = _load_for_inference(args)
    for text, tokens in zip(args.texts, token_lists):
        ids = encode(tokens, vocab, config["max_len"]).unsqueeze(1).to(device)  # (T, 1)
        probs = torch.softmax(model(ids, torch.tensor([ids.size(0)])), dim=-1)[0]
        label = int(probs.argmax())
        name = "positive" if LABELS[label] == "pos" else "negative"
        if args.json:
            print(json.dumps({"label": name, "probability": float(probs[label]),
                              "probabilities": {"negative": float(probs[0]), "positive": float(probs[1])}}))
        else:
            print(f"{name} {float(probs[label]):.4f}")
    return 0
