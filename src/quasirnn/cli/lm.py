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
import ctypes
import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from tqdm import tqdm

from quasirnn.cli.precision import PRECISIONS, autocast, check_precision, grad_scaler
from quasirnn.checkpoint import atomic_write_text, load_checkpoint, load_module_state, save_checkpoint
from quasirnn.data import Vocabulary, batchify, bptt_batches, encode_file, find_split_file, load_corpus
from quasirnn.data.download import resolve_data_dir
from quasirnn.data.text import has_corpus
from quasirnn.errors import CheckpointError, ConfigError, DataError
from quasirnn.models import CELLS, LanguageModel, detach_hidden, evaluate

__all__ = ["LMConfig", "add_parser", "build_model", "keep_freed_memory", "resolve_device", "run_eval", "run_train", "train_step"]

KIND = "language_model"
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
OPTIMIZERS = ("adam", "adamw", "sgd")


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


def _window(text: str) -> Union[int, list[int]]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma-separated list, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"windows must be >= 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help=f"cpu, cuda, cuda:N or auto (default: {DEFAULTS.device})")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="32: float32; bf16/fp16: mixed precision with torch.autocast, the QRNN recurrence "
                        "accumulated in float32 (fp16 needs CUDA; default: 32)")


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
    g.add_argument("--out", metavar="DIR", default=None, help="output directory (default: runs/lm-CELL-TIMESTAMP)")
    g.add_argument("--resume", metavar="OUT_DIR", default=None,
                   help="continue the run saved in OUT_DIR (or a checkpoint file) with its configuration")
    g.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing checkpoint")
    g = t.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default=None, help=f"recurrent layer (default: {d.cell})")
    g.add_argument("--emb-size", type=_positive_int, default=None, help=f"embedding size E (default: {d.emb_size})")
    g.add_argument("--hidden-size", type=_positive_int, default=None,
                   help=f"hidden size of every layer but the last, which has E when tied (default: {d.hidden_size})")
    g.add_argument("--num-layers", type=_positive_int, default=None, help=f"recurrent layers (default: {d.num_layers})")
    g.add_argument("--window", type=_window, default=None,
                   help=f"qrnn convolution width of the FIRST layer (others 1), or a comma list with one width per "
                        f"layer (default: {d.window}; qrnn only)")
    g.add_argument("--zoneout", type=_probability, default=None, help=f"qrnn zoneout probability (default: {d.zoneout})")
    g.add_argument("--dropout", type=_probability, default=None,
                   help=f"locked dropout on the last layer's output (default: {d.dropout})")
    g.add_argument("--dropouth", type=_probability, default=None,
                   help=f"locked dropout between layers (default: {d.dropouth})")
    g.add_argument("--dropouti", type=_probability, default=None,
                   help=f"locked dropout on the embeddings (default: {d.dropouti})")
    g.add_argument("--dropoute", type=_probability, default=None,
                   help=f"embedding (word-type) dropout (default: {d.dropoute})")
    g.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, default=None,
                   help=f"share embedding and decoder weights (default: {d.tie_weights})")
    g = t.add_argument_group("optimisation")
    g.add_argument("--bptt", type=_positive_int, default=None, help=f"BPTT window length (default: {d.bptt})")
    g.add_argument("--variable-bptt", action=argparse.BooleanOptionalAction, default=None,
                   help=f"AWD-LSTM random window lengths around --bptt (default: {d.variable_bptt})")
    g.add_argument("--batch-size", type=_positive_int, default=None, help=f"training batch size (default: {d.batch_size})")
    g.add_argument("--eval-batch-size", type=_positive_int, default=None,
                   help=f"validation/test batch size (default: {d.eval_batch_size})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=f"(default: {d.optimizer})")
    g.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {d.lr})")
    g.add_argument("--wdecay", type=_nonnegative_float, default=None, help=f"weight decay (default: {d.wdecay})")
    g.add_argument("--clip", type=_nonnegative_float, default=None,
                   help=f"gradient norm clipping, 0 = off (default: {d.clip})")
    g.add_argument("--lr-decay", type=float, default=None,
                   help=f"multiply the learning rate by this when validation perplexity does not improve after an "
                        f"epoch, 1 = off (default: {d.lr_decay})")
    g.add_argument("--seed", type=int, default=None, help=f"random seed (default: {d.seed})")
    g = t.add_argument_group("run length (can change on --resume)")
    g.add_argument("--epochs", type=int, default=None, help=f"total epochs (default: {d.epochs})")
    g.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimizer steps in total, 0 = no limit (default: no limit)")
    g.add_argument("--time-budget", type=_nonnegative_float, default=None, metavar="MINUTES",
                   help=f"stop after this much training time in this invocation (evaluation excluded), 0 = no "
                        f"limit (default: {d.time_budget})")
    g = t.add_argument_group("execution and logging")
    _add_device_options(g)
    g.add_argument("--log-interval", type=_positive_int, default=None,
                   help=f"steps between log lines when the progress bar is off (default: {d.log_interval})")
    g.add_argument("--quiet", action="store_true", help="no progress bar nor periodic log lines")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")
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
    return lm


# ---------------------------------------------------------------------------- helpers


def resolve_device(name: Optional[str]) -> torch.device:
    """Turns ``--device`` into a torch.device; ``auto`` (or None) picks CUDA when available.

    Raises:
        ConfigError: an unknown device string, or CUDA/MPS requested where it is unavailable.
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name}: not a device (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available (no GPU, or torch built without CUDA); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise ConfigError(f"--device {name}: unsupported device type {device.type!r} (use cpu, cuda or auto)")
    return device


def keep_freed_memory() -> bool:
    """Tells glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same large buffers (the (T, B, V) logits and their
    gradients, tens of MB) every step; by default glibc serves each from a fresh ``mmap`` and
    the kernel zero-fills its pages again, which costs 15–30% of a CPU step for the default
    models. Disabling mmap for allocations (``M_MMAP_MAX = 0``) and raising the trim threshold
    keeps those pages. Process-wide; only on Linux with glibc; set ``QUASIRNN_MALLOC_TUNING=0``
    to skip.

    Returns:
        True when the settings were applied.
    """
    if os.environ.get("QUASIRNN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc
        return False


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


def _make_optimizer(config: dict[str, Any], model: LanguageModel) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, wd = config["optimizer"], config["lr"], config["wdecay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


def _checkpoint_path(path: Union[str, Path]) -> Path:
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def _finite(x: Optional[float]) -> Optional[float]:
    return x if x is not None and math.isfinite(x) else None


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


class _Log:
    """Prints progress lines on stdout (flushed, so logs interleave correctly in CI)."""

    def __init__(self, bar_active: bool) -> None:
        self.bar_active = bar_active

    def __call__(self, line: str) -> None:
        if self.bar_active:
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)


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
    config = dataclasses.asdict(DEFAULTS)
    for key in config:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    return config


def _resume_config(args: argparse.Namespace, saved: dict[str, Any], path: Path) -> dict[str, Any]:
    config = dataclasses.asdict(DEFAULTS)
    config.update({k: v for k, v in saved.items() if k in FIXED_KEYS or k in INHERITED_KEYS})
    conflicts = []
    for key in FIXED_KEYS:
        value = getattr(args, key, None)
        if value is not None and value != config.get(key):
            conflicts.append(f"--{key.replace('_', '-')} {value} (checkpoint: {config.get(key)})")
    if conflicts:
        raise ConfigError(
            f"a resumed run keeps the configuration of {path}; these options differ: {'; '.join(conflicts)}"
        )
    for key in SESSION_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    return config


def _validate(config: dict[str, Any]) -> None:
    if config["cell"] != "qrnn" and config["zoneout"]:
        raise ConfigError(f"--zoneout applies to the qrnn cell only; use 0 with --cell {config['cell']}")
    window = config["window"]
    if isinstance(window, list) and len(window) != config["num_layers"]:
        raise ConfigError(f"--window lists {len(window)} widths for {config['num_layers']} layers")
    if config["lr"] <= 0:
        raise ConfigError(f"--lr must be > 0, got {config['lr']}")
    if not 0 < config["lr_decay"] <= 1:
        raise ConfigError(f"--lr-decay must be in (0, 1], got {config['lr_decay']}")
    if config["epochs"] < 0:
        raise ConfigError(f"--epochs must be >= 0, got {config['epochs']}")
    if config["max_steps"] is not None and config["max_steps"] < 0:
        raise ConfigError(f"--max-steps must be >= 0, got {config['max_steps']}")


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


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _start_or_resume(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Optional[dict], Optional[Path]]:
    """The run's configuration, output directory, and checkpoint (and its path) when resuming."""
    if args.resume is not None:
        path = _checkpoint_path(args.resume)
        checkpoint = load_checkpoint(path, KIND, required=("model", "optimizer", "vocab", "progress"))
        config = _resume_config(args, checkpoint["config"], path)
        out = Path(args.out) if args.out is not None else path.parent
        _validate(config)
        return config, out, checkpoint, path
    config = _config_from_args(args)
    if getattr(args, "window", None) is not None and config["cell"] != "qrnn":
        raise ConfigError(
            f"--window is the qrnn convolution width; --cell {config['cell']} reads one step at a time, so leave it out"
        )
    if args.out is not None:
        out = Path(args.out)
    else:
        out = Path("runs") / f"lm-{config['cell']}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / CHECKPOINT_NAME).exists() and not args.overwrite:
        raise ConfigError(f"{out} already holds a checkpoint; continue it with --resume {out}, or pass --overwrite")
    _validate(config)
    return config, out, None, None


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

    show_bar = False if args.quiet else (args.progress if args.progress is not None else sys.stderr.isatty())
    log = _Log(show_bar)
    n_params = model.num_parameters()
    log(f"{'resuming' if checkpoint is not None else 'training'} {config['cell']} language model: "
        f"{n_params:,} parameters, vocabulary {len(corpus.vocab):,}, {corpus.train.numel():,} training tokens, "
        f"device {device}, precision {precision}, {torch.get_num_threads()} threads, output {out}")

    bptt = config["bptt"]
    budget_s = (config["time_budget"] or 0) * 60.0
    max_steps = config["max_steps"] or 0
    session_train_s = 0.0
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
            "wall_time_s": time.perf_counter() - wall_start,
            "stop_reason": stop_reason,
            "finished": finished,
            "history": progress.history,
            "config": config,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
            "python": platform.python_version(),
        }

    def limit_reached() -> Optional[str]:
        if max_steps and progress.step >= max_steps:
            return "max_steps"
        if budget_s and session_train_s >= budget_s:
            return "time_budget"
        return None

    out.mkdir(parents=True, exist_ok=True)
    try:
        while progress.epoch < config["epochs"]:
            stop_reason = limit_reached()
            if stop_reason is not None:
                break
            model.train()
            bar = tqdm(total=batches_per_epoch, initial=math.ceil(progress.position / bptt), disable=not show_bar,
                       desc=f"epoch {progress.epoch + 1}/{config['epochs']}", unit="batch", file=sys.stderr,
                       dynamic_ncols=True, leave=False)
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
                session_train_s += dt
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
                stop_reason = limit_reached()
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

