"""``quasirnn translate train | eval | translate``: character-level German→English (QRNN §3.3).

Train::

    quasirnn translate train [--data DIR] [--cell qrnn|lstm] [--emb-size E] [--hidden-size H]
                             [--num-layers L] [--encoder-window K,..] [--decoder-window K,..]
                             [--max-len N] [--batch-size B] [--time-budget MINUTES] [--threads N]
                             [--seed S] [--out DIR]
    quasirnn translate train --resume OUT_DIR [--time-budget MINUTES] [--epochs N]

reads ``DIR/{train,val,test_2016_flickr}.{de,en}[.gz]`` (default: the Multi30k folder
``../shared/data/multi30k``), builds one character vocabulary per language from the training
pairs, and trains a QRNN (or LSTM) encoder–decoder with teacher forcing on length-bucketed
batches. After every epoch (and when the run stops) it translates the validation set greedily,
measures BLEU, keeps the weights with the best one, multiplies the learning rate by
``--lr-decay`` when BLEU did not improve, and writes ``OUT/checkpoint.pt`` and
``OUT/metrics.json`` atomically. At the end the best weights translate validation and
test_2016_flickr with beam search (``--final-beam``).

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
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from tqdm import tqdm

from quasirnn.checkpoint import atomic_write_text, load_checkpoint, load_module_state, save_checkpoint
from quasirnn.cli.common import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    Log,
    checkpoint_path,
    finite,
    nonnegative_float,
    positive_int,
    probability,
    rng_state,
    set_rng_state,
    setup_device,
    window_list,
)
from quasirnn.data.parallel import (
    PAD,
    BOS,
    CharVocab,
    ParallelSplit,
    batch_iter,
    find_parallel_file,
    length_batches,
    pad_batch,
    read_parallel,
)
from quasirnn.errors import ConfigError, DataError
from quasirnn.models.decoding import beam_search, greedy_decode
from quasirnn.models.translation import TRANSLATION_CELLS, build_translator

__all__ = ["TranslateConfig", "add_parser", "bleu", "translate_lines", "run_train", "run_eval", "run_translate",
           "train_step"]

KIND = "translator"
DEFAULT_DATA = "../shared/data/multi30k"
SRC_LANG, TGT_LANG = "de", "en"
VAL_SPLIT, TEST_SPLIT = "val", "test_2016_flickr"


@dataclass
class TranslateConfig:
    """Configuration of a translation run (plain values; stored in the checkpoint).

    The defaults are sized for 90 minutes of training on one CPU core: 2 layers of 256 units,
    embeddings of 64, dropout 0.2, Adam 2e-3 with gradient clipping 1 and label smoothing 0.1,
    batches of 64 sentence pairs; the QRNN encoder's first layer has window 6 (the paper's), the
    decoder's 2, higher layers 1. The QRNN trains at about 12,000–18,000 characters/s on one
    core of the 2-core development machine (an epoch of Multi30k, 3.8M characters, in 3.5–5.5
    minutes: 16–25 epochs in 90 minutes); a model of 384 units was slower to reach the same
    BLEU in 12 minutes. The LSTM (``--cell lstm``) uses the same sizes.
    """

    # data
    data: Optional[str] = None
    max_len: int = 200
    limit: Optional[int] = None
    # model
    cell: str = "qrnn"
    emb_size: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    encoder_window: Union[int, list[int]] = 6
    decoder_window: Union[int, list[int]] = 2
    dropout: float = 0.2
    zoneout: float = 0.0
    # optimisation
    batch_size: int = 64
    eval_batch_size: int = 200
    lr: float = 2e-3
    clip: float = 1.0
    lr_decay: float = 0.5
    label_smoothing: float = 0.1
    seed: int = 1111
    # run length and session (may change on --resume)
    epochs: int = 100
    max_steps: Optional[int] = None
    time_budget: Optional[float] = 90.0
    val_limit: Optional[int] = None
    final_beam: int = 5
    device: str = "auto"
    threads: Optional[int] = None


FIXED_KEYS = ("max_len", "limit", "cell", "emb_size", "hidden_size", "num_layers", "encoder_window", "decoder_window",
              "dropout", "zoneout", "batch_size", "lr", "clip", "lr_decay", "label_smoothing", "seed")
SESSION_KEYS = ("data", "epochs", "max_steps", "time_budget", "val_limit", "final_beam", "eval_batch_size", "device",
                "threads")
DEFAULTS = TranslateConfig()


# ---------------------------------------------------------------------------- argument parsing


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``translate`` (with ``train``, ``eval``, ``translate``) to the ``quasirnn`` sub-commands."""
    d = DEFAULTS
    p = commands.add_parser("translate", help="character-level German-English translation (QRNN paper section 3.3)",
                            description="Character-level encoder-decoder translation on Multi30k (QRNN paper section 3.3).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    t = sub.add_parser("train", help="train an encoder-decoder", description=__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g = t.add_argument_group("data")
    g.add_argument("--data", metavar="DIR", default=None,
                   help=f"folder with {{train,val,{TEST_SPLIT}}}.{{de,en}}[.gz] (default: {DEFAULT_DATA})")
    g.add_argument("--max-len", type=positive_int, default=None,
                   help=f"drop training pairs longer than this many characters; also the longest output (default: {d.max_len})")
    g.add_argument("--limit", type=positive_int, default=None, help="use only the first N training pairs")
    g.add_argument("--val-limit", type=positive_int, default=None,
                   help="validate on the first N validation pairs only (default: all)")
    g = t.add_argument_group("model")
    g.add_argument("--cell", choices=TRANSLATION_CELLS, default=None, help=f"(default: {d.cell})")
    g.add_argument("--emb-size", type=positive_int, default=None, help=f"character embedding size (default: {d.emb_size})")
    g.add_argument("--hidden-size", type=positive_int, default=None, help=f"units per layer (default: {d.hidden_size})")
    g.add_argument("--num-layers", type=positive_int, default=None,
                   help=f"layers of the encoder and of the decoder (default: {d.num_layers})")
    g.add_argument("--encoder-window", type=window_list, default=None,
                   help=f"qrnn encoder convolution width of the first layer (others 1), or one per layer "
                        f"(default: {d.encoder_window})")
    g.add_argument("--decoder-window", type=window_list, default=None,
                   help=f"the same for the decoder (default: {d.decoder_window})")
    g.add_argument("--dropout", type=probability, default=None, help=f"(default: {d.dropout})")
    g.add_argument("--zoneout", type=probability, default=None, help=f"qrnn only (default: {d.zoneout})")
    g = t.add_argument_group("optimisation (Adam)")
    g.add_argument("--batch-size", type=positive_int, default=None, help=f"sentence pairs per batch (default: {d.batch_size})")
    g.add_argument("--eval-batch-size", type=positive_int, default=None, help=f"(default: {d.eval_batch_size})")
    g.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {d.lr})")
    g.add_argument("--clip", type=nonnegative_float, default=None, help=f"gradient norm clipping, 0 = off (default: {d.clip})")
    g.add_argument("--lr-decay", type=float, default=None,
                   help=f"multiply the learning rate by this when validation BLEU does not improve (default: {d.lr_decay})")
    g.add_argument("--label-smoothing", type=probability, default=None, help=f"(default: {d.label_smoothing})")
    g.add_argument("--seed", type=int, default=None, help=f"(default: {d.seed})")
    g = t.add_argument_group("run length (can change on --resume)")
    g.add_argument("--epochs", type=positive_int, default=None, help=f"(default: {d.epochs})")
    g.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps in total")
    g.add_argument("--time-budget", type=nonnegative_float, default=None, metavar="MINUTES",
                   help=f"stop after this much training time in this invocation (evaluation excluded), 0 = no limit "
                        f"(default: {d.time_budget})")
    g.add_argument("--final-beam", type=positive_int, default=None,
                   help=f"beam size of the final validation/test translation (default: {d.final_beam})")
    g = t.add_argument_group("output and execution")
    g.add_argument("--out", metavar="DIR", default=None, help="output directory (default: runs/translate-CELL-TIME)")
    g.add_argument("--resume", metavar="OUT_DIR", default=None, help="continue the run saved in OUT_DIR")
    g.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing checkpoint")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    g.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on when stderr is a terminal)")
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="BLEU of a checkpoint on a split")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a run directory or checkpoint file")
    e.add_argument("--data", metavar="DIR", default=None, help="data folder (default: the checkpoint's)")
    e.add_argument("--split", default=TEST_SPLIT, help=f"file prefix of the split (default: {TEST_SPLIT})")
    _add_inference_options(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_eval)

    r = sub.add_parser("translate", help="translate text from arguments or stdin (one sentence per line)")
    r.add_argument("--checkpoint", required=True, metavar="PATH", help="a run directory or checkpoint file")
    r.add_argument("text", nargs="*", help="German sentences (default: read lines from stdin)")
    _add_inference_options(r)
    r.set_defaults(func=run_translate)
    return p


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=positive_int, default=5, help="beam size, 1 = greedy (default: 5)")
    p.add_argument("--length-penalty", type=nonnegative_float, default=1.0,
                   help="alpha of the length normalisation score / length**alpha (default: 1)")
    p.add_argument("--max-len", type=positive_int, default=None, help="longest output (default: the training --max-len)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="sentences per batch (default: 100)")
    p.add_argument("--weights", choices=("best", "last"), default="best", help="(default: best validation BLEU)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: auto)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")


# ---------------------------------------------------------------------------- pieces


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu, default 13a tokenization, cased) of detokenized hypotheses; 0–100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)


def translate_lines(model, lines: list[str], src_vocab: CharVocab, tgt_vocab: CharVocab, device: torch.device,
                    max_len: int, beam: int = 1, batch_size: int = 100, length_penalty: float = 1.0) -> list[str]:
    """Translates raw sentences (in order) with greedy decoding (``beam`` 1) or beam search.

    Unknown characters become ``<unk>``; an empty (or whitespace-only) line translates to "".
    Each output is at most ``min(max_len, 2 · source length + 10)`` characters.
    The model is put in eval mode and back.
    """
    was_training = model.training
    model.eval()
    out = [""] * len(lines)
    todo = [i for i, line in enumerate(lines) if line.strip()]
    try:
        for idx in length_batches([len(lines[i]) for i in todo], batch_size):
            idx = [todo[i] for i in idx]
            src, src_len = pad_batch([src_vocab.encode(lines[i]) for i in idx], device)
            cap = min(max_len, 2 * int(src_len.max()) + 10)
            if beam == 1:
                ids = greedy_decode(model, src, src_len, cap)
            else:
                ids = beam_search(model, src, src_len, cap, beam=beam, length_penalty=length_penalty)
            for i, row in zip(idx, ids):
                out[i] = tgt_vocab.decode(row)
    finally:
        model.train(was_training)
    return out


def train_step(model, optimizer: torch.optim.Optimizer, src, src_len, tgt, clip: float, label_smoothing: float) -> float:
    """One teacher-forced step: the decoder reads ``<bos>`` + tgt[:-1] and predicts tgt (T, B).

    Returns:
        The mean (label-smoothed) cross-entropy over the real target characters, in nats.
    """
    tgt_in = torch.cat([torch.full_like(tgt[:1], BOS), tgt[:-1]], 0)
    logits = model(src, src_len, tgt_in)
    loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


def _data_dir(given: Optional[str]) -> Path:
    return Path(given if given is not None else DEFAULT_DATA)


def _load_split(directory: Path, split: str, limit: Optional[int] = None) -> tuple[list[str], list[str]]:
    return read_parallel(find_parallel_file(directory, split, SRC_LANG), find_parallel_file(directory, split, TGT_LANG),
                         limit)


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _validate_config(config: dict[str, Any]) -> None:
    if config["cell"] != "qrnn" and config["zoneout"]:
        raise ConfigError(f"--zoneout applies to the qrnn cell only; use 0 with --cell {config['cell']}")
    for key in ("encoder_window", "decoder_window"):
        w = config[key]
        if isinstance(w, list) and len(w) != config["num_layers"]:
            raise ConfigError(f"--{key.replace('_', '-')} lists {len(w)} widths for {config['num_layers']} layers")
    if config["lr"] <= 0:
        raise ConfigError(f"--lr must be > 0, got {config['lr']}")
    if not 0 < config["lr_decay"] <= 1:
        raise ConfigError(f"--lr-decay must be in (0, 1], got {config['lr_decay']}")


def _config(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Optional[dict]]:
    """The configuration, output directory and (when resuming) checkpoint of a training run."""
    defaults = dataclasses.asdict(DEFAULTS)
    checkpoint = None
    if args.resume is not None:
        path = checkpoint_path(args.resume)
        checkpoint = load_checkpoint(path, KIND, required=("model", "best_model", "optimizer", "src_vocab", "tgt_vocab"))
        config = dict(defaults)
        config.update(checkpoint["config"])
        conflicts = [f"--{k.replace('_', '-')} {getattr(args, k)} (checkpoint: {config[k]})"
                     for k in FIXED_KEYS if getattr(args, k, None) is not None and getattr(args, k) != config[k]]
        if conflicts:
            raise ConfigError(f"a resumed run keeps the configuration of {path}; these options differ: {'; '.join(conflicts)}")
        for k in SESSION_KEYS:
            if getattr(args, k, None) is not None:
                config[k] = getattr(args, k)
        out = Path(args.out) if args.out is not None else path.parent
    else:
        config = dict(defaults)
        for k in config:
            if getattr(args, k, None) is not None:
                config[k] = getattr(args, k)
        out = Path(args.out) if args.out is not None else \
            Path("runs") / f"translate-{config['cell']}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (out / CHECKPOINT_NAME).exists() and not args.overwrite:
            raise ConfigError(f"{out} already holds a checkpoint; continue it with --resume {out}, or pass --overwrite")
    _validate_config(config)
    return config, out, checkpoint


# ---------------------------------------------------------------------------- train


def run_train(args: argparse.Namespace) -> int:
    """``quasirnn translate train``: see the module docstring."""
    config, out, checkpoint = _config(args)
    device = setup_device(config["device"], config["threads"])
    data = _data_dir(config["data"])
    train_src, train_tgt = _load_split(data, "train", config["limit"])
    val_src, val_tgt = _load_split(data, VAL_SPLIT, config["val_limit"])
    if checkpoint is not None:
        src_vocab, tgt_vocab = CharVocab(checkpoint["src_vocab"]), CharVocab(checkpoint["tgt_vocab"])
    else:
        src_vocab, tgt_vocab = CharVocab.build(train_src), CharVocab.build(train_tgt)
    train = ParallelSplit.encode(train_src, train_tgt, src_vocab, tgt_vocab, config["max_len"])
    if len(train) == 0:
        raise DataError(f"{data}: no training pair has at most --max-len {config['max_len']} characters")

    torch.manual_seed(config["seed"])
    try:
        model = build_translator(config, len(src_vocab), len(tgt_vocab)).to(device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    epoch, batch_in_epoch, step, train_s, train_chars = 0, 0, 0, 0.0, 0
    best_bleu, best_state, history = -1.0, _state_copy(model), []
    if checkpoint is not None:
        load_module_state(model, checkpoint["model"], out)
        optimizer.load_state_dict(checkpoint["optimizer"])
        best_state = checkpoint["best_model"]
        c = checkpoint["counters"]
        epoch, batch_in_epoch, step, train_s, train_chars = (c["epoch"], c["batch_in_epoch"], c["step"], c["train_s"],
                                                             c["train_chars"])
        best_bleu, history = c["best_bleu"], checkpoint["history"]
        set_rng_state(checkpoint["rng"], device)

    show = args.progress if args.progress is not None else sys.stderr.isatty()
    log = Log(show)
    log(f"translate train: {config['cell']} {model.num_parameters():,} parameters, {len(train):,} training pairs "
        f"({train.num_chars():,} characters), vocab de {len(src_vocab)} / en {len(tgt_vocab)}, device {device}, "
        f"threads {torch.get_num_threads()}, out {out}")
    budget_s = (config["time_budget"] or 0) * 60.0
    session_s = 0.0
    wall_start = time.perf_counter()

    def lr() -> float:
        return optimizer.param_groups[0]["lr"]

    def save(metrics: dict[str, Any]) -> None:
        save_checkpoint(out / CHECKPOINT_NAME, KIND, config, model=model.state_dict(), best_model=best_state,
                        optimizer=optimizer.state_dict(), src_vocab=src_vocab.chars, tgt_vocab=tgt_vocab.chars,
                        counters=dict(epoch=epoch, batch_in_epoch=batch_in_epoch, step=step, train_s=train_s,
                                      train_chars=train_chars, best_bleu=best_bleu),
                        history=history, rng=rng_state(device))
        atomic_write_text(out / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")

    def metrics(final: Optional[dict], stop_reason: Optional[str]) -> dict[str, Any]:
        m = {
            "val_bleu": finite(best_bleu) if best_bleu >= 0 else None,
            "test_bleu": None,
            "chars_per_s": train_chars / train_s if train_s > 0 else None,
            "params": model.num_parameters(),
            "epochs_done": epoch + batch_in_epoch / max(1, math.ceil(len(train) / config["batch_size"])),
            "steps": step,
            "train_s": train_s,
            "lr": lr(),
        }
        if final:
            m.update(final)
        m.update({"stop_reason": stop_reason, "wall_time_s": time.perf_counter() - wall_start, "history": history,
                  "config": config, "device": str(device), "threads": torch.get_num_threads(),
                  "torch": str(torch.__version__)})
        return m

    def validate(loss: float, decay: bool = True) -> None:
        nonlocal best_bleu, best_state
        t0 = time.perf_counter()
        hyps = translate_lines(model, val_src, src_vocab, tgt_vocab, device, config["max_len"], 1,
                               config["eval_batch_size"])
        score = bleu(hyps, val_tgt)
        improved = score > best_bleu
        if improved:
            best_bleu, best_state = score, _state_copy(model)
        elif decay and config["lr_decay"] < 1:
            for group in optimizer.param_groups:
                group["lr"] *= config["lr_decay"]
        history.append({"epoch": epoch, "step": step, "train_s": round(train_s, 1), "train_loss": finite(loss),
                        "val_bleu": score, "lr": lr(), "chars_per_s": train_chars / max(train_s, 1e-9)})
        log(f"| epoch {epoch + 1} step {step} | train {train_s / 60:.1f} min | loss {loss:.3f} | val BLEU "
            f"{score:.2f}{' *' if improved else ''} (best {best_bleu:.2f}) | lr {lr():.2g} | "
            f"{train_chars / max(train_s, 1e-9):,.0f} chars/s | eval {time.perf_counter() - t0:.0f}s")
        log(f"|   {val_src[0]!r} -> {hyps[0]!r}")

    stop_reason, running = None, float("nan")
    model.train()
    try:
        while epoch < config["epochs"] and stop_reason is None:
            rng = random.Random(config["seed"] * 1000 + epoch)
            batches = length_batches([len(s) + len(t) for s, t in zip(train.src, train.tgt)], config["batch_size"],
                                     shuffle=True, rng=rng)
            bar = tqdm(total=len(batches), initial=batch_in_epoch, disable=not show, desc=f"epoch {epoch + 1}",
                       unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False)
            for src, src_len, tgt, tgt_len in batch_iter(train, batches[batch_in_epoch:], device):
                t0 = time.perf_counter()
                loss = train_step(model, optimizer, src, src_len, tgt, config["clip"], config["label_smoothing"])
                dt = time.perf_counter() - t0
                train_s += dt
                session_s += dt
                train_chars += int(src_len.sum()) + int(tgt_len.sum())
                running = loss if math.isnan(running) else 0.98 * running + 0.02 * loss
                step += 1
                batch_in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{running:.3f}", cps=f"{train_chars / train_s:,.0f}", refresh=False)
                if not math.isfinite(loss):
                    raise ConfigError(f"the training loss became {loss} at step {step}; try a lower --lr")
                if config["max_steps"] and step >= config["max_steps"]:
                    stop_reason = "max_steps"
                elif budget_s and session_s >= budget_s:
                    stop_reason = "time_budget"
                if stop_reason:
                    break
            bar.close()
            validate(running, decay=stop_reason is None)  # after every epoch, and where the run stops
            if stop_reason is None:
                epoch, batch_in_epoch = epoch + 1, 0
            save(metrics(None, stop_reason))
        if stop_reason is None:
            stop_reason = "epochs"
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        log("interrupted: saving and evaluating the best weights")
    save(metrics(None, stop_reason))

    # final evaluation of the best weights
    last_state = _state_copy(model)
    model.load_state_dict(best_state)
    final: dict[str, Any] = {}
    test_src, test_tgt = _load_split(data, TEST_SPLIT)
    beam = config["final_beam"]
    for name, (s, t) in (("val", (val_src, val_tgt)), ("test", (test_src, test_tgt))):
        hyps = translate_lines(model, s, src_vocab, tgt_vocab, device, config["max_len"], beam, config["eval_batch_size"])
        final[f"{name}_bleu"] = bleu(hyps, t)
        if beam > 1 and name == "test":  # the best greedy validation BLEU is known already
            greedy = translate_lines(model, s, src_vocab, tgt_vocab, device, config["max_len"], 1,
                                     config["eval_batch_size"])
            final[f"{name}_bleu_greedy"] = bleu(greedy, t)
    final["final_beam"] = beam
    final["best_val_bleu_greedy"] = best_bleu
    model.load_state_dict(last_state)
    m = metrics(final, stop_reason)
    save(m)
    log(f"done ({stop_reason}): val BLEU {final['val_bleu']:.2f}, {TEST_SPLIT} BLEU {final['test_bleu']:.2f} "
        f"(beam {beam}), {m['chars_per_s']:,.0f} chars/s, {m['params']:,} parameters; {out / METRICS_NAME}")
    return 0


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
    data = _data_dir(args.data if args.data is not None else config.get("data"))
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
    """``quasirnn translate translate``: one translation per input sentence on stdout."""
    model, config, src_vocab, tgt_vocab, device, max_len = _load_for_inference(args)
    lines = list(args.text) if args.text else [line.rstrip("\r\n") for line in sys.stdin]
    for line in translate_lines(model, lines, src_vocab, tgt_vocab, device, max_len, args.beam, args.batch_size,
                                args.length_penalty):
        print(line)
    return 0
