"""The translation experiment's data, training task, checkpoint loading and evaluation (``quasirnn translate``)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch

from quasirnn.data.bitext import CharVocab, ParallelSplit, find_parallel_file, read_parallel
from quasirnn.data.paths import DATA_ENV, default_data_dirs
from quasirnn.errors import CheckpointError, DataError
from quasirnn.experiments.translation.config import KIND, SRC_LANG, TEST_SPLIT, TGT_LANG, VAL_SPLIT
from quasirnn.experiments.translation.config import TranslateConfig, build_translator
from quasirnn.experiments.translation.task import TranslationData, TranslationTask, bleu, translate_lines
from quasirnn.ops import compile_seconds
from quasirnn.training import Distributed
from quasirnn.training.launch import Experiment, load_run, trained_model

__all__ = ["EXPERIMENT", "MULTI30K", "evaluate_checkpoint", "load_for_inference", "load_split", "make_task",
           "resolve_multi30k_dir", "upgrade_checkpoint"]

#: Folder name of the German–English Multi30k corpus under ``$QUASIRNN_DATA`` and the cache.
MULTI30K = "multi30k"


def _holds_training_pairs(directory: Path) -> bool:
    return all((directory / f"train.{lang}.gz").is_file() or (directory / f"train.{lang}").is_file()
               for lang in (SRC_LANG, TGT_LANG))


def resolve_multi30k_dir(given: Optional[Union[str, Path]] = None) -> Path:
    """The Multi30k folder: ``given`` (``--data``) as is, else the first of ``$QUASIRNN_DATA/multi30k`` and
    the cache's ``multi30k`` that holds ``train.de[.gz]`` and ``train.en[.gz]``.

    Raises:
        DataError: no ``given`` and no default folder holds the training files (the message lists
            the folders searched and how to supply the data).

    Example::

        >>> import os, tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "multi30k").mkdir()
        >>> for lang in ("de", "en"):
        ...     _ = (root / "multi30k" / f"train.{lang}").write_text("x\\n")
        >>> os.environ["QUASIRNN_DATA"] = str(root)
        >>> resolve_multi30k_dir() == root / "multi30k"
        True
        >>> del os.environ["QUASIRNN_DATA"]
    """
    if given is not None:
        return Path(given).expanduser()
    candidates = default_data_dirs(MULTI30K)
    for candidate in candidates:
        if _holds_training_pairs(candidate):
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise DataError(f"no Multi30k found (searched {searched}): pass --data DIR with train.de[.gz], train.en[.gz], ..., "
                    f"or set {DATA_ENV} to a folder holding {MULTI30K}/")


def load_split(directory: Path, split: str, limit: Optional[int] = None) -> tuple[list[str], list[str]]:
    """The (German, English) sentences of ``split`` (its first ``limit`` pairs).

    Raises:
        DataError: missing or unreadable files, or files of different lengths.
    """
    return read_parallel(find_parallel_file(directory, split, SRC_LANG), find_parallel_file(directory, split, TGT_LANG),
                         limit)


def upgrade_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
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


def make_task(config: TranslateConfig, checkpoint: Optional[dict], dist: Distributed) -> tuple[TranslationTask, str]:
    """The sentence pairs (the checkpoint's vocabularies when resuming) and the seeded model, as a
    task (holding ``config`` with the resolved data folder and the windows the model was built
    with), and the run's header line.

    Raises:
        DataError: unreadable data, or no training pair within ``max_len``. ConfigError: bad options.
    """
    directory = resolve_multi30k_dir(config.data)
    train_src, train_tgt = load_split(directory, "train", config.limit)
    val_src, val_tgt = load_split(directory, VAL_SPLIT, config.val_limit)
    test_src, test_tgt = load_split(directory, TEST_SPLIT)
    if checkpoint is not None:
        src_vocab, tgt_vocab = CharVocab(checkpoint["src_vocab"]), CharVocab(checkpoint["tgt_vocab"])
    else:
        src_vocab, tgt_vocab = CharVocab.build(train_src), CharVocab.build(train_tgt)
    train = ParallelSplit.encode(train_src, train_tgt, src_vocab, tgt_vocab, config.max_len)
    if len(train) == 0:
        raise DataError(f"{directory}: no training pair has at most --max-len {config.max_len} characters")
    data = TranslationData(train, val_src, val_tgt, test_src, test_tgt, src_vocab, tgt_vocab, TEST_SPLIT)
    torch.manual_seed(config.optim.seed)
    model = build_translator(config.model, len(src_vocab), len(tgt_vocab)).to(dist.device)
    config = dataclasses.replace(config, data=str(directory.resolve()), model=config.model.as_built(model))
    header = (f"{config.model.cell} translator: {model.num_parameters():,} parameters, {len(train):,} training pairs "
              f"({train.num_chars():,} characters), vocab {SRC_LANG} {len(src_vocab)} / {TGT_LANG} {len(tgt_vocab)}")
    return TranslationTask(model, data, config, dist), header


#: The translation experiment as ``quasirnn translate train`` runs it (:mod:`quasirnn.training.launch`).
EXPERIMENT = Experiment("translate", "translate", KIND, ("model", "best_model", "optimizer", "src_vocab", "tgt_vocab"),
                        TranslateConfig(), make_task, upgrade=upgrade_checkpoint, excluded_seconds=compile_seconds)


def load_for_inference(path: Path, device: torch.device, weights: str = "best", quantize: Optional[str] = None,
                       ) -> tuple[TranslateConfig, CharVocab, CharVocab, torch.nn.Module]:
    """A checkpoint's configuration, vocabularies and model (``weights`` "best" or "last") in eval mode on ``device``;
    ``quantize`` "int8": the model :func:`quasirnn.quantize` makes of it (CPU only).

    Raises:
        CheckpointError: an unreadable checkpoint, one of another kind, or weights that do not fit.
        ConfigError: ``quantize`` on a GPU.
    """
    checkpoint, config = load_run(path, EXPERIMENT, ("model", "best_model", "src_vocab", "tgt_vocab"))
    src_vocab, tgt_vocab = CharVocab(checkpoint["src_vocab"]), CharVocab(checkpoint["tgt_vocab"])
    model = build_translator(config.model, len(src_vocab), len(tgt_vocab))
    return config, src_vocab, tgt_vocab, trained_model(model, checkpoint, weights, path, device, quantize)


def evaluate_checkpoint(path: Path, data: Optional[str], split: str, device: torch.device, weights: str = "best",
                        beam: int = 5, batch_size: int = 100, length_penalty: float = 1.0,
                        max_len: Optional[int] = None, quantize: Optional[str] = None) -> dict[str, Any]:
    """BLEU of a checkpoint's translations (beam search, :func:`translate_lines`) of ``split``.

    ``data`` None: the training run's folder; ``max_len`` None: the run's ``max_len``; ``quantize``: as
    :func:`load_for_inference`.

    Returns:
        ``{"split", "bleu", "beam", "sentences", "seconds"}`` (seconds: the translation's wall time).

    Raises:
        CheckpointError, DataError: see the messages.
    """
    config, src_vocab, tgt_vocab, model = load_for_inference(path, device, weights, quantize)
    src, tgt = load_split(resolve_multi30k_dir(data if data is not None else config.data), split)
    t0 = time.perf_counter()
    hyps = translate_lines(model, src, src_vocab, tgt_vocab, device, max_len or config.max_len, beam, batch_size,
                           length_penalty)
    return {"split": split, "bleu": bleu(hyps, tgt), "beam": beam, "sentences": len(src),
            "seconds": time.perf_counter() - t0}
