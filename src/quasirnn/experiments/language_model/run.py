"""The language-model experiment's data resolution, its training task and the evaluation of a checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch

from quasirnn.data import Corpus, Vocabulary, encode_file, find_split_file, load_corpus
from quasirnn.data.download import resolve_data_dir
from quasirnn.data.lm_corpus import has_corpus
from quasirnn.errors import ConfigError, DataError
from quasirnn.experiments.language_model.cache_pointer import evaluate_with_cache
from quasirnn.experiments.language_model.config import KIND, LMConfig, build_model, resolve_softmax
from quasirnn.experiments.language_model.evaluation import evaluate
from quasirnn.experiments.language_model.presets import PRESETS, cache_defaults, new_run_defaults
from quasirnn.experiments.language_model.task import LanguageModelTask, batchify_split, perplexity
from quasirnn.ops import compile_seconds
from quasirnn.training import Distributed
from quasirnn.training.launch import Experiment, load_run, trained_model
from quasirnn.training.runlog import finite

__all__ = ["EXPERIMENT", "BF16_CELLS", "data_directory", "evaluate_checkpoint", "evaluate_checkpoint_with_cache",
           "make_task", "tested_weights"]

#: The cells ``--precision auto`` trains in bf16 on CPUs with bfloat16 instructions: measured 2.9×
#: faster at the same perplexity per epoch for the QRNN; 1.26× and worse per epoch for the LSTM;
#: not measured for the SRU (BENCHMARKS.md, "bf16 on the CPU").
BF16_CELLS = ("qrnn",)


def data_directory(given: Optional[str], saved: Optional[str] = None) -> Path:
    """The corpus directory: ``given``, else ``saved`` (a run's) when it holds a corpus, else
    ``$QUASIRNN_DATA/ptb`` or the cache (:func:`quasirnn.data.download.resolve_data_dir`)."""
    if given is None and saved and has_corpus(saved):
        given = saved
    return resolve_data_dir(given)


def make_task(config: LMConfig, checkpoint: Optional[dict], dist: Distributed) -> tuple[LanguageModelTask, str]:
    """The corpus (the checkpoint's vocabulary when resuming) and the seeded model, as a task, and
    the run's header line.

    Returns:
        (the task, whose ``config`` holds the resolved data directory, and the softmax and windows
        the model was built with; the header).

    Raises:
        DataError: no corpus, or one whose vocabulary is not the checkpoint's. ConfigError: bad options.
    """
    saved = LMConfig.from_dict(checkpoint["config"]).data if checkpoint is not None else None
    corpus: Corpus = load_corpus(data_directory(config.data, saved))
    if checkpoint is not None and corpus.vocab.itos != list(checkpoint["vocab"]):
        raise DataError(
            f"the training split in {corpus.directory} does not give the vocabulary of the checkpoint "
            f"({len(corpus.vocab)} vs {len(checkpoint['vocab'])} words); pass the run's --data directory"
        )
    options, word_order = resolve_softmax(config.model, corpus.train, len(corpus.vocab))
    torch.manual_seed(config.optim.seed)
    model = build_model(options, len(corpus.vocab), word_order).to(dist.device)
    config = dataclasses.replace(config, data=str(corpus.directory.resolve()), model=options.as_built(model))
    softmax = options.softmax + (f" {options.cutoffs}" if options.softmax == "adaptive" else "")
    preset = f"{PRESETS[config.preset].summary()}, " if config.preset in PRESETS else ""
    if config.finetuned_from is not None:
        preset = f"fine-tuning of {config.finetuned_from}: {preset}"
    header = (f"{preset}{options.cell} language model: {model.num_parameters():,} parameters, vocabulary "
              f"{len(corpus.vocab):,}, {softmax} softmax, {corpus.train.numel():,} training tokens, "
              f"precision {config.run.precision}")
    return LanguageModelTask(model, corpus, config, dist), header


#: The language-model experiment as ``quasirnn lm train`` runs it (:mod:`quasirnn.training.launch`).
EXPERIMENT = Experiment("lm", "lm", KIND, ("model", "optimizer", "vocab", "progress"), LMConfig(), make_task,
                        new_run=new_run_defaults, bf16_cells=BF16_CELLS, excluded_seconds=compile_seconds)


def tested_weights(checkpoint: dict[str, Any], config: LMConfig) -> str:
    """Which weights of a run's checkpoint its test used, and evaluation, fine-tuning (and whatever
    reads a trained model) use: "best" (``best_model``, the best validation's) with ``keep_best``,
    else "last" (``model``: the averaged weights of a run that averaged), for
    :func:`~quasirnn.training.launch.trained_model`.

    Example::

        >>> tested_weights({"model": {}, "best_model": {}}, LMConfig().replace(keep_best=True))
        'best'
    """
    return "best" if config.keep_best and "best_model" in checkpoint else "last"


def _checkpoint_split(path: Path, data: Optional[str], split: str, device: torch.device, precision: Optional[str],
                      quantize: Optional[str]) -> tuple[torch.nn.Module, torch.Tensor, LMConfig, Path, str]:
    """A checkpoint's model (eval mode, on ``device``; quantised with ``quantize``), the ids (N,) of ``split`` of
    its corpus (or ``data``'s) on ``device``, its configuration, the corpus directory and the resolved precision
    (float32 for a quantised model when ``precision`` is None)."""
    checkpoint, config = load_run(path, EXPERIMENT, ("model", "vocab"))
    precision = EXPERIMENT.precision(config, device, "32" if quantize and precision is None else precision)
    if quantize and precision != "32":
        raise ConfigError(f"an {quantize} model takes float32 inputs: leave --precision out, or give 32")
    vocab = Vocabulary(checkpoint["vocab"])
    directory = data_directory(data, config.data)
    ids = encode_file(find_split_file(directory, split), vocab)
    model = trained_model(build_model(config.model, len(vocab)), checkpoint, tested_weights(checkpoint, config),
                          path, device, quantize)
    return model, ids.to(device), config, directory, precision


def evaluate_checkpoint(path: Path, data: Optional[str], split: str, device: torch.device,
                        precision: Optional[str] = None, batch_size: Optional[int] = None,
                        bptt: Optional[int] = None, quantize: Optional[str] = None) -> dict[str, Any]:
    """The perplexity of a checkpoint's model on ``split`` ("test" or "valid") of a corpus.

    ``data`` None: the training run's corpus, else the default one; ``precision``,
    ``batch_size`` and ``bptt`` None: the run's precision (so the perplexities of its
    metrics.json are reproduced; :meth:`~quasirnn.training.launch.Experiment.precision`),
    evaluation (test: test) batch size and window. The weights are those the run tested: the best
    validation's with ``keep_best``, else the last (the averaged ones of a run that averaged).
    ``quantize`` "int8" evaluates the model :func:`quasirnn.quantize` makes of them (CPU, float32).

    Returns:
        ``{"split", "ppl", "loss", "tokens", "checkpoint", "data"}``.

    Raises:
        CheckpointError, DataError, ConfigError: see the messages.
    """
    model, ids, config, directory, precision = _checkpoint_split(path, data, split, device, precision, quantize)
    run_batch = config.test_batch_size if split == "test" and config.test_batch_size else config.eval_batch_size
    data = batchify_split(ids, split, directory, batch_size or run_batch, device)
    loss, count = evaluate(model, data, bptt or config.bptt, precision)
    return {"split": split, "ppl": finite(perplexity(loss)), "loss": finite(loss), "tokens": count,
            "checkpoint": str(path), "data": str(directory)}


def evaluate_checkpoint_with_cache(path: Path, data: Optional[str], split: str, device: torch.device,
                                   precision: Optional[str] = None, bptt: Optional[int] = None,
                                   window: Optional[int] = None, theta: Optional[float] = None,
                                   lambd: Optional[float] = None, quantize: Optional[str] = None) -> dict[str, Any]:
    """The perplexity of a checkpoint's model on ``split`` with the neural cache, and without it
    (:func:`~quasirnn.experiments.language_model.cache_pointer.evaluate_with_cache`: the split
    as one stream, batch size 1, as awd-lstm-lm's ``pointer.py``).

    ``data``, ``precision``, ``bptt``, ``quantize``: as :func:`evaluate_checkpoint`. ``window``, ``theta``,
    ``lambd`` None: the values of the run's preset
    (:func:`~quasirnn.experiments.language_model.presets.cache_defaults`; PTB's without one).

    Returns:
        ``{"split", "ppl", "loss" (with the cache), "plain_ppl", "plain_loss" (without it),
        "tokens", "cache": {"window", "theta", "lambda"}, "checkpoint", "data"}``.

    Raises:
        CheckpointError, DataError: see the messages. ConfigError: a cache setting out of range
        (:class:`~quasirnn.experiments.language_model.cache_pointer.NeuralCache`), bad options.
    """
    given = {"window": window, "theta": theta, "lambd": lambd}
    model, ids, config, directory, precision = _checkpoint_split(path, data, split, device, precision, quantize)
    cache = dataclasses.replace(cache_defaults(config.preset), **{k: v for k, v in given.items() if v is not None})
    stream = batchify_split(ids, split, directory, 1, device)[:, 0]
    result = evaluate_with_cache(model, stream, cache, bptt or config.bptt, precision)
    return {"split": split, "ppl": finite(perplexity(result.cache_loss)), "loss": finite(result.cache_loss),
            "plain_ppl": finite(perplexity(result.loss)), "plain_loss": finite(result.loss),
            "tokens": result.tokens, "cache": cache.as_dict(), "checkpoint": str(path), "data": str(directory)}
