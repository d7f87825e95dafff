"""``quasirnn lm train`` and ``quasirnn lm eval``: word-level language modeling (QRNN §3.2).

Train::

    quasirnn lm train [--data DIR] [--cell qrnn|lstm|sru] [--emb-size E] [--hidden-size H] ...
                      [--epochs N] [--max-steps S] [--time-budget MINUTES] [--out DIR]
    quasirnn lm train --resume OUT_DIR [--epochs N] [--max-steps S] [--time-budget MINUTES]

Each epoch walks the training stream in (bptt, B) windows with truncated backpropagation
through time, then reports validation perplexity; the end of the run (all epochs, ``--max-steps``,
``--time-budget`` or Ctrl-C) evaluates validation and test perplexity and writes
``OUT/metrics.json`` and ``OUT/checkpoint.pt`` (both atomically). ``--resume OUT_DIR`` continues
a run with the configuration stored in its checkpoint (only the run-length options, the device,
the data directory and the logging options may change).

Evaluate::

    quasirnn lm eval --checkpoint OUT_DIR/checkpoint.pt [--data DIR] [--split test|valid]

recomputes the perplexity the training run reported, with the checkpoint's vocabulary,
evaluation batch size and bptt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F

from quasirnn.cli.precision import add_precision_option, autocast, check_precision, grad_scaler
from quasirnn.checkpoint import atomic_write_text, load_checkpoint, load_module_state, save_checkpoint
from quasirnn.cli.common import CHECKPOINT_NAME, METRICS_NAME, Limits, epoch_bar, run_record, show_progress_bar
from quasirnn.cli.common import Log as _Log
from quasirnn.cli.common import add_device_options as _add_device_options
from quasirnn.cli.common import add_model_options, add_optimisation_options, add_output_options, add_run_options
from quasirnn.cli.common import checkpoint_path as _checkpoint_path
from quasirnn.cli.common import config_from_args, keep_freed_memory, resolve_device, start_or_resume
from quasirnn.cli.common import finite as _finite
from quasirnn.cli.common import make_optimizer as _make_optimizer
from quasirnn.cli.common import positive_int as _positive_int
from quasirnn.cli.common import rng_state as _rng_state
from quasirnn.cli.common import set_rng_state as _set_rng_state
from quasirnn.data import Vocabulary, batchify, bptt_batches, encode_file, find_split_file, load_corpus
from quasirnn.data.download import resolve_data_dir
from quasirnn.data.text import has_corpus
from quasirnn.errors import CheckpointError, ConfigError, DataError
from quasirnn.models import CELLS, LanguageModel, detach_hidden, evaluate

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
    others use 1, as AWD-QRNN), or a list with one width per layer.
    """

    # model
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
    seed: int = 1111
    # run length and session (may change on --resume)
    epochs: int = 40
    max_steps: Optional[int] = None
    time_budget: Optional[float] = 20.0
    device: str = "auto"
    precision: str = "32"
    threads: Optional[int] = None
    log_interval: int = 100
    data: Optional[str] = None


#: Config keys that a resumed run keeps from its checkpoint.
FIXED_KEYS = (
    "cell", "emb_size", "hidden_size", "num_layers", "window", "zoneout", "dropout", "dropouth", "dropouti",
    "dropoute", "tie_weights", "bptt", "variable_bptt", "batch_size", "eval_batch_size", "optimizer", "lr",
    "wdecay", "clip", "lr_decay", "seed",
)
#: Config keys that a resumed run may override (run length, device, logging, data location).
SESSION_KEYS = ("epochs", "max_steps", "time_budget", "device", "precision", "threads", "log_interval", "data")
#: Session keys a resumed run takes from its checkpoint unless given again (the others reset to defaults).
INHERITED_KEYS = ("epochs",)
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
        description="Train a QRNN or LSTM language model; writes OUT/metrics.json and OUT/checkpoint.pt.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.set_defaults(func=run_train)
    g = t.add_argument_group("data and output")
    g.add_argument("--data", metavar="DIR", default=None,
                   help="directory with {ptb.,}{train,valid,test}.txt or wiki.*.tokens (default: $QUASIRNN_DATA/ptb, "
                        "the user cache, else download the PTB into the cache)")
    add_output_options(g, "runs/lm-CELL-TIMESTAMP")
    g = t.add_argument_group("model")
    add_model_options(g, d, CELLS, hidden="hidden size of every layer but the last, which has E when tied",
                      dropout="locked dropout on the last layer's output", dropouth="locked dropout between layers",
                      dropouti="locked dropout on the embeddings")
    g.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, default=None,
                   help=f"share embedding and decoder weights (default: {d.tie_weights})")
    g = t.add_argument_group("optimisation")
    g.add_argument("--bptt", type=_positive_int, default=None, help=f"BPTT window length (default: {d.bptt})")
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
    e.add_argument("--batch-size", type=_positive_int, default=None, help="evaluation batch size (default: the run's)")
    e.add_argument("--bptt", type=_positive_int, default=None, help="window length (default: the run's)")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_device_options(e)
    add_precision_option(e)
    return lm


# ---------------------------------------------------------------------------- helpers


def build_model(config: dict[str, Any], vocab_size: int) -> LanguageModel:
    """The :class:`LanguageModel` that ``config`` (an :class:`LMConfig` as a dict) describes.

    Raises:
        ConfigError: the options do not make a valid model (e.g. zoneout with the lstm cell).
    """
    try:
        return LanguageModel(
            vocab_size,
            emb_size=config["emb_size"],
            hidden_size=config["hidden_size"],
            num_layers=config["num_layers"],
            cell=config["cell"],
            window=config["window"],
            zoneout=config["zoneout"],
            dropout=config["dropout"],
            dropouth=config["dropouth"],
            dropouti=config["dropouti"],
            dropoute=config["dropoute"],
            tie_weights=config["tie_weights"],
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


@dataclass
class _Progress:
    """Counters of a run, saved in the checkpoint."""

    epoch: int = 0  # completed epochs
    position: int = 0  # time step of the next window within the current epoch
    step: int = 0  # optimizer steps in total
    train_tokens: int = 0
    train_time_s: float = 0.0
    best_val_loss: float = math.inf
    history: list = field(default_factory=list)


# ---------------------------------------------------------------------------- training


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return config_from_args(args, dataclasses.asdict(DEFAULTS))


def _load_data(data: Optional[str], fallback: Optional[str] = None):
    if data is None and fallback is not None and has_corpus(fallback):
        data = fallback
    directory = resolve_data_dir(data)
    return load_corpus(directory)


def _batchify(corpus, split: str, batch_size: int, device: torch.device) -> torch.Tensor:
    """``batchify`` of one split, on ``device``; a split too short for the batch is a DataError."""
    ids = corpus.split(split)
    if ids.numel() < 2 * batch_size:
        raise DataError(
            f"the {split} split in {corpus.directory} has {ids.numel()} tokens, too few for batch size {batch_size}"
        )
    return batchify(ids, batch_size).to(device)


def _start_or_resume(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]:
    """The run's configuration, output directory, and checkpoint (and its path) when resuming."""
    cell = getattr(args, "cell", None) or DEFAULTS.cell
    if args.resume is None and getattr(args, "window", None) is not None and cell != "qrnn":
        raise ConfigError(f"--window is the qrnn convolution width; --cell {cell} reads one step at a time, so leave it out")
    return start_or_resume(args, KIND, ("model", "optimizer", "vocab", "progress"), dataclasses.asdict(DEFAULTS),
                           (FIXED_KEYS, SESSION_KEYS, INHERITED_KEYS), "lm")


def _restore(checkpoint: dict, path: Path, model: LanguageModel, optimizer: torch.optim.Optimizer,
             device: torch.device) -> tuple[_Progress, Any]:
    """Loads weights, optimizer state and RNG state; returns the progress and the hidden state."""
    load_module_state(model, checkpoint["model"], path)
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not match the model: {exc}") from None
    try:
        progress = _Progress(**checkpoint["progress"])
    except TypeError:
        raise CheckpointError(f"{path}: unrecognised training progress record") from None
    hidden = None
    if checkpoint.get("hidden") is not None and progress.position > 0:
        hidden = tuple(_to_device(h, device) for h in model.unpack_hidden(checkpoint["hidden"]))
    if "rng" in checkpoint:
        _set_rng_state(checkpoint["rng"], device)
    return progress, hidden


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
    """One step of truncated BPTT (QRNN §3.2; AWD-LSTM §4.1).

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
    hidden = detach_hidden(hidden)
    with autocast(precision, inputs.device):
        logits, hidden = model(inputs, hidden)  # (T, B, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    saved = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] *= lr_scale
    if scaler is not None:
        scaler.step(optimizer)  # skips the step if the scaled gradients overflowed
        scaler.update()
    else:
        optimizer.step()
    for group, lr in zip(optimizer.param_groups, saved):
        group["lr"] = lr
    return loss.item(), hidden


def run_train(args: argparse.Namespace) -> int:
    """``quasirnn lm train``: trains, evaluates, writes metrics.json and checkpoint.pt.

    Raises:
        DataError, CheckpointError, ConfigError: see the messages; printed by the CLI.
    """
    wall_start = time.perf_counter()
    config, out, checkpoint, ckpt_path = _start_or_resume(args)
    device = resolve_device(config["device"])
    check_precision(config["precision"], device)
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    if device.type == "cpu":
        keep_freed_memory()

    saved_data = checkpoint["config"].get("data") if checkpoint is not None else None
    corpus = _load_data(config["data"], saved_data)
    config["data"] = str(corpus.directory.resolve())
    if checkpoint is not None and corpus.vocab.itos != list(checkpoint["vocab"]):
        raise DataError(
            f"the training split in {corpus.directory} does not give the vocabulary of the checkpoint "
            f"({len(corpus.vocab)} vs {len(checkpoint['vocab'])} words); pass the run's --data directory"
        )

    torch.manual_seed(config["seed"])
    model = build_model(config, len(corpus.vocab)).to(device)
    optimizer = _make_optimizer(config, model)
    precision = config["precision"]
    scaler = grad_scaler(precision, device)
    progress, hidden = _Progress(), None
    if checkpoint is not None:
        progress, hidden = _restore(checkpoint, ckpt_path, model, optimizer, device)
        if scaler is not None and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])

    def evaluate_split(data: torch.Tensor) -> float:
        with autocast(precision, device):
            return evaluate(model, data, bptt)[0]

    train_data = _batchify(corpus, "train", config["batch_size"], device)
    valid_data = _batchify(corpus, "valid", config["eval_batch_size"], device)
    test_data = _batchify(corpus, "test", config["eval_batch_size"], device)

    show_bar = show_progress_bar(args)
    log = _Log(show_bar)
    n_params = model.num_parameters()
    log(f"{'resuming' if checkpoint is not None else 'training'} {config['cell']} language model: "
        f"{n_params:,} parameters, vocabulary {len(corpus.vocab):,}, {corpus.train.numel():,} training tokens, "
        f"device {device}, precision {precision}, {torch.get_num_threads()} threads, output {out}")

    bptt = config["bptt"]
    limits = Limits(config["max_steps"], config["time_budget"])
    stop_reason = None
    last_eval_step = None  # step at which val_loss was computed
    val_loss = math.nan
    batches_per_epoch = math.ceil((train_data.size(0) - 1) / bptt)

    def save(metrics: dict[str, Any]) -> None:
        save_checkpoint(
            out / CHECKPOINT_NAME, KIND, config,
            model=model.state_dict(), optimizer=optimizer.state_dict(), vocab=list(corpus.vocab.itos),
            progress=dataclasses.asdict(progress),
            hidden=model.pack_hidden(detach_hidden(hidden)) if progress.position > 0 else None,
            rng=_rng_state(device), metrics=metrics, scaler=None if scaler is None else scaler.state_dict(),
        )
        atomic_write_text(out / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")

    def metrics(test_loss: Optional[float], finished: bool) -> dict[str, Any]:
        return {
            "kind": KIND,
            "cell": config["cell"],
            "val_ppl": _finite(_ppl(val_loss)) if not math.isnan(val_loss) else None,
            "val_loss": _finite(val_loss),
            "test_ppl": None if test_loss is None else _finite(_ppl(test_loss)),
            "test_loss": None if test_loss is None else _finite(test_loss),
            "best_epoch_val_ppl": _finite(_ppl(progress.best_val_loss)),
            "train_tokens_per_s": progress.train_tokens / progress.train_time_s if progress.train_time_s else None,
            "params": n_params,
            "vocab_size": len(corpus.vocab),
            "steps": progress.step,
            "epochs": round(progress.epoch + progress.position / max(1, train_data.size(0) - 1), 4),
            "epochs_completed": progress.epoch,
            "train_tokens": progress.train_tokens,
            "train_time_s": progress.train_time_s,
            **run_record(config, device, wall_start, stop_reason, finished, progress.history),
        }

    out.mkdir(parents=True, exist_ok=True)
    try:
        while progress.epoch < config["epochs"]:
            stop_reason = limits.reached(progress.step)
            if stop_reason is not None:
                break
            model.train()
            bar = epoch_bar(batches_per_epoch, math.ceil(progress.position / bptt), progress.epoch, config["epochs"],
                            show_bar)
            window_loss, window_tokens, window_steps, window_time = 0.0, 0, 0, 0.0
            batch_in_epoch = math.ceil(progress.position / bptt)
            for pos, inputs, targets in bptt_batches(train_data, bptt, start=progress.position,
                                                      variable=config["variable_bptt"]):
                t0 = time.perf_counter()
                # AWD-LSTM scales the learning rate with the window length under variable bptt
                lr_scale = inputs.size(0) / bptt if config["variable_bptt"] else 1.0
                loss_value, hidden = train_step(model, optimizer, inputs, targets, hidden, config["clip"], lr_scale,
                                               precision, scaler)
                dt = time.perf_counter() - t0

                progress.step += 1
                progress.position = pos + inputs.size(0)
                progress.train_tokens += targets.numel()
                progress.train_time_s += dt
                limits.spend(dt)
                window_loss += loss_value
                window_steps += 1
                window_tokens += targets.numel()
                window_time += dt
                batch_in_epoch += 1
                bar.update(1)
                if not math.isfinite(loss_value):
                    stop_reason = "diverged"
                    break
                if window_steps >= (10 if show_bar else config["log_interval"]):
                    avg = window_loss / window_steps
                    rate = window_tokens / window_time
                    if show_bar:
                        bar.set_postfix(loss=f"{avg:.3f}", ppl=f"{_ppl(avg):.1f}", tok_s=f"{rate:,.0f}", refresh=False)
                    elif not args.quiet:
                        log(f"epoch {progress.epoch + 1} step {progress.step} ({batch_in_epoch}/{batches_per_epoch}) | "
                            f"loss {avg:.3f} | ppl {_ppl(avg):.1f} | {rate:,.0f} tok/s | lr {optimizer.param_groups[0]['lr']:.2e}")
                    window_loss, window_tokens, window_steps, window_time = 0.0, 0, 0, 0.0
                stop_reason = limits.reached(progress.step)
                if stop_reason is not None:
                    break
            bar.close()
            if stop_reason is not None:
                break
            # end of an epoch: validation, learning-rate decay on plateau, checkpoint
            progress.epoch += 1
            progress.position = 0
            hidden = None
            val_loss = evaluate_split(valid_data)
            last_eval_step = progress.step
            improved = val_loss < progress.best_val_loss
            if improved:
                progress.best_val_loss = val_loss
            elif config["lr_decay"] < 1:
                for group in optimizer.param_groups:
                    group["lr"] *= config["lr_decay"]
            progress.history.append({"epoch": progress.epoch, "step": progress.step, "val_ppl": _finite(_ppl(val_loss)),
                                     "lr": optimizer.param_groups[0]["lr"], "train_time_s": round(progress.train_time_s, 3)})
            rate = progress.train_tokens / progress.train_time_s if progress.train_time_s else 0.0
            log(f"epoch {progress.epoch} | valid ppl {_ppl(val_loss):.2f}{'' if improved else ' (no improvement)'} | "
                f"step {progress.step} | {rate:,.0f} tok/s | train time {progress.train_time_s:.0f} s")
            save(metrics(None, finished=False))
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        log("interrupted: evaluating and saving (Ctrl-C again to abort)")

    if stop_reason is None:
        stop_reason = "epochs"
    if last_eval_step != progress.step:  # stopped mid-epoch (the plateau logic only sees end-of-epoch values)
        val_loss = evaluate_split(valid_data)
    test_loss = evaluate_split(test_data)
    final = metrics(test_loss, finished=True)
    save(final)
    rate = final["train_tokens_per_s"] or 0.0
    print(f"done ({stop_reason}) after {progress.step} steps, {final['epochs']:.2f} epochs | "
          f"valid ppl {_ppl(val_loss):.2f} | test ppl {_ppl(test_loss):.2f} | {rate:,.0f} tok/s | saved {out}", flush=True)
    return 0


def _to_device(state: Any, device: torch.device) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.to(device)
    items = [_to_device(s, device) for s in state]
    return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)


# ---------------------------------------------------------------------------- evaluation


def run_eval(args: argparse.Namespace) -> int:
    """``quasirnn lm eval``: prints the perplexity of a checkpoint on a split.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages; printed by the CLI.
    """
    path = _checkpoint_path(args.checkpoint)
    checkpoint = load_checkpoint(path, KIND, required=("model", "vocab"))
    config = dataclasses.asdict(DEFAULTS)
    config.update(checkpoint["config"])
    device = resolve_device(args.device)
    precision = args.precision or "32"
    check_precision(precision, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cpu":
        keep_freed_memory()
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
    result = {"split": args.split, "ppl": _finite(_ppl(loss)), "loss": _finite(loss), "tokens": count,
              "checkpoint": str(path), "data": str(directory)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split} perplexity {_ppl(loss):.2f} (loss {loss:.4f} nats/token over {count:,} tokens)")
    return 0

