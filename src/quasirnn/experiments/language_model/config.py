"""The language-model experiment's configuration (:class:`LMConfig`), its model section
(:class:`LanguageModelOptions`), the softmax resolution and the model builder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from quasirnn.errors import ConfigError
from quasirnn.experiments.model_options import (DROPOUTE_HELP, ZONEOUT_HELP, RecurrentModelOptions, option_errors,
                                                window_help)
from quasirnn.models import CELLS, SOFTMAXES, LanguageModel
from quasirnn.models.paper_windows import AWD_QRNN_WINDOWS
from quasirnn.models.softmax import default_cutoffs
from quasirnn.training.config import Optimisation, RunOptions, TrainingConfig, fixed, section, session
from quasirnn.training.options import (DATA, EVAL_BATCH_HELP, MODEL, OPTIMISATION, cutoff_list, nonnegative_float,
                                       positive_int, probability, window_list)

__all__ = ["ADAPTIVE_FROM", "KIND", "LMConfig", "LanguageModelOptions", "build_model", "resolve_softmax"]

KIND = "language_model"
#: ``--softmax auto`` is adaptive from this vocabulary size on (PTB's 10,000 words, where it trained 1.8× faster
#: than the full softmax in float32 and 1.74× in bf16, and reached a better perplexity in 20 minutes), full below.
ADAPTIVE_FROM = 10_000


@dataclass
class LanguageModelOptions(RecurrentModelOptions):
    """The arguments of the :class:`~quasirnn.models.LanguageModel` an ``lm`` run trains (its
    ``model`` section; :func:`build_model` builds it, and the model checks them).

    ``window`` is the QRNN convolution width of every layer, or a list with one width per layer;
    None (default) is AWD-QRNN's 2 in the first layer, 1 above
    (:data:`~quasirnn.models.paper_windows.AWD_QRNN_WINDOWS`). ``softmax`` "auto" is the full
    softmax below :data:`ADAPTIVE_FROM` words and the adaptive one from there on (PTB's 10,000; or
    whenever ``cutoffs`` are given); ``cutoffs`` None = :func:`~quasirnn.models.default_cutoffs`
    of the training counts (:func:`resolve_softmax`). A run stores the softmax and the windows
    its model was built with.

    Example::

        >>> options = LanguageModelOptions(num_layers=2, window=3)
        >>> build_model(options, 50).windows, options.resolved().window
        ((3, 3), [3, 3])
    """

    cell: str = fixed("qrnn", "recurrent layer (default: {default})", choices=CELLS, group=MODEL)
    emb_size: int = fixed(200, "embedding size E (default: {default})", positive_int, group=MODEL)
    hidden_size: int = fixed(600, "hidden size of every layer but the last, which has E when tied (default: "
                                  "{default})", positive_int, group=MODEL)
    num_layers: int = fixed(3, "recurrent layers (default: {default})", positive_int, group=MODEL)
    window: Union[None, int, list[int]] = fixed(None, window_help(AWD_QRNN_WINDOWS), window_list, group=MODEL)
    zoneout: float = fixed(0.0, ZONEOUT_HELP, probability, group=MODEL)
    dropout: float = fixed(0.1, "locked dropout on the last layer's output (default: {default})", probability,
                           group=MODEL)
    dropouth: float = fixed(0.1, "locked dropout between layers (default: {default})", probability, group=MODEL)
    dropouti: float = fixed(0.1, "locked dropout on the embeddings (default: {default})", probability, group=MODEL)
    dropoute: float = fixed(0.0, DROPOUTE_HELP, probability, group=MODEL)
    wdrop: float = fixed(0.0, "weight drop (DropConnect) on each layer's weight matrix in training: the qrnn's gate "
                              "projection, the lstm's hidden-to-hidden, the sru's input projection (AWD-LSTM "
                              "--wdrop) (default: {default})", probability, group=MODEL)
    tie_weights: bool = fixed(True, "share embedding and decoder weights (default: {default})", group=MODEL)
    softmax: str = fixed("auto", "output layer: full, or adaptive (tied to the embedding with --tie-weights, else "
                                 "torch's AdaptiveLogSoftmaxWithLoss); auto = adaptive from "
                                 f"{ADAPTIVE_FROM:,} words or with --cutoffs (default: {{default}})",
                         choices=("auto", *SOFTMAXES), group=MODEL)
    cutoffs: Optional[list[int]] = fixed(None, "adaptive softmax cluster boundaries in frequency ranks, e.g. "
                                               "2000,10000 (default: chosen from the training word counts)",
                                         cutoff_list, group=MODEL)

    window_patterns = {"window": AWD_QRNN_WINDOWS}

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint from before ``--softmax`` has a full softmax; its int window meant the first layer."""
        saved.setdefault("softmax", "full")
        saved.setdefault("cutoffs", None)
        return super().upgrade(saved)


@dataclass
class LMConfig(TrainingConfig):
    """Configuration of a language-model training run (stored in the checkpoint as :meth:`to_dict`).

    The defaults train a 3-layer model on the Penn Treebank on a 2-core CPU in about 20
    minutes (``time_budget``); the learning rate, dropouts and softmax were chosen by measurement
    for that budget (BENCHMARKS.md, issue 33). On a 2-core AMD EPYC Zen 2 without bfloat16
    instructions (float32, torch 2.13 CPU, one thread) the qrnn trains ≈ 3,300 tokens/s, 4.2
    epochs, to validation/test perplexity 116.1/111.3 (the earlier defaults, lr 2e-3 and AWD's
    dropouts: 182 against 143 validation at half that budget); for 60 minutes heavier dropouts
    pay (0.2 / 0.15 / 0.2: test 90.9 against 94.6). The lstm cell needs a lower rate: with these
    defaults ``--lr 1e-3`` reached test 287 in 20 minutes, 5e-4 379 (at the old dropouts 2e-3 stayed
    on the unigram plateau). ``model`` holds the model's arguments (:class:`LanguageModelOptions`).
    ``preset`` names the recipe of :data:`quasirnn.experiments.language_model.presets.PRESETS`
    the run started from (its values are already in the other fields). ``data`` None: the
    checkpoint's corpus when resuming, else ``$QUASIRNN_DATA/ptb`` or the cache. The run's
    ``precision`` defaults to "auto": bf16 for the qrnn cell on CPUs with bfloat16 instructions,
    else 32 (:data:`~quasirnn.experiments.language_model.run.BF16_CELLS`), resolved when the run
    starts and stored resolved: a resumed run keeps it unless ``--precision`` is given.

    The AWD-LSTM recipe's parts (Merity et al. 2017; the presets set them): weight drop ``wdrop``
    (model section), AR ``alpha`` and TAR ``beta`` (added to the training loss only; the logged loss
    and perplexity are the cross-entropy), ``keep_best`` (the final test and ``lm eval`` use the
    best validation's weights), ``test_batch_size``, and in the optimisation section the step decay
    ``when`` and NT-ASGD: ``optimizer`` "sgd" switches to averaged SGD after ``nonmono`` (5, as in
    awd-lstm-lm) epochs without improvement (:mod:`quasirnn.training.schedule`). By default they
    are off (the default optimizer is adam). ``finetuned_from`` names the run a ``lm finetune``
    run started from.

    Example::

        >>> config = LMConfig().replace(window=3, lr=0.5)
        >>> config.model.window, config.optim.lr, config.to_dict()["bptt"], config.run.precision
        (3, 0.5, 70, 'auto')
        >>> LMConfig().resolved().model.window, config.resolved().model.window
        ([2, 1, 1], [3, 3, 3])
        >>> LMConfig.from_dict({"window": 3, "num_layers": 3}).model.window  # an old checkpoint: first layer only
        [3, 1, 1]
    """

    preset: Optional[str] = fixed(None)  # its option lists the recipes: quasirnn.cli.lm
    finetuned_from: Optional[str] = fixed(None)  # set by lm finetune
    model: LanguageModelOptions = section(LanguageModelOptions)
    bptt: int = fixed(70, "BPTT window length (default: {default})", positive_int, group=OPTIMISATION)
    variable_bptt: bool = fixed(False, "AWD-LSTM random window lengths around --bptt (default: {default})",
                                group=OPTIMISATION)
    batch_size: int = fixed(32, "training batch size (default: {default})", positive_int, group=OPTIMISATION)
    eval_batch_size: int = fixed(10, EVAL_BATCH_HELP, positive_int, group=OPTIMISATION)
    test_batch_size: Optional[int] = fixed(None, "test batch size (default: --eval-batch-size)", positive_int,
                                           group=OPTIMISATION)
    alpha: float = fixed(0.0, "AR: add ALPHA times the mean square of the last layer's dropped outputs to the "
                              "training loss (AWD-LSTM --alpha) (default: {default})", nonnegative_float,
                         metavar="ALPHA", group=OPTIMISATION)
    beta: float = fixed(0.0, "TAR: add BETA times the mean square of the changes over time of the last layer's "
                             "outputs before dropout (AWD-LSTM --beta) (default: {default})", nonnegative_float,
                        metavar="BETA", group=OPTIMISATION)
    keep_best: bool = fixed(False, "test (and lm eval) the weights of the best validation, not the last, as "
                                   "awd-lstm-lm keeps its best model (default: {default})", group=OPTIMISATION)
    optim: Optimisation = section(Optimisation, lr=4e-3, wdecay=1.2e-6, clip=0.25, nonmono=5)
    run: RunOptions = section(RunOptions, epochs=40, time_budget=20.0, log_interval=100, precision="auto")
    data: Optional[str] = session(None, "directory with {ptb.,}{train,valid,test}.txt or wiki.*.tokens (default: "
                                        "$QUASIRNN_DATA/ptb, the user cache, else download the PTB into the cache)",
                                  metavar="DIR", group=DATA)

    validation_metric = "validation perplexity"


def _softmax_kind(options: LanguageModelOptions, vocab_size: int) -> str:
    """"full" or "adaptive": softmax "auto" is adaptive with cutoffs or from :data:`ADAPTIVE_FROM` words."""
    if options.softmax != "auto":
        return options.softmax
    return "adaptive" if options.cutoffs is not None or vocab_size >= ADAPTIVE_FROM else "full"


def resolve_softmax(options: LanguageModelOptions, train: torch.Tensor,
                    vocab_size: int) -> tuple[LanguageModelOptions, torch.Tensor]:
    """``options`` with softmax "auto" and cutoffs None resolved from the training ids (V,) counts.

    Returns:
        (the resolved model section, the word ids by decreasing training frequency (V,), ties in
        id order: the adaptive softmax's ranks).
    """
    counts = torch.bincount(train, minlength=vocab_size)
    softmax, cutoffs = _softmax_kind(options, vocab_size), options.cutoffs
    if softmax == "adaptive" and cutoffs is None:
        cutoffs = default_cutoffs(counts)
    order = torch.sort(counts, descending=True, stable=True).indices
    return dataclasses.replace(options, softmax=softmax, cutoffs=cutoffs), order


def build_model(options: LanguageModelOptions, vocab_size: int,
                word_order: Optional[torch.Tensor] = None) -> LanguageModel:
    """The :class:`LanguageModel` of the model section ``options`` (its fields are the model's arguments).

    ``word_order`` (V,) gives the adaptive softmax's frequency ranks (a checkpoint's state dict
    holds them too). Softmax "auto" is resolved by the vocabulary size (see :func:`resolve_softmax`,
    which also picks cutoffs).

    Raises:
        ConfigError: the options do not make a valid model (the model's check, naming the option:
            :func:`~quasirnn.experiments.model_options.option_errors`; e.g. zoneout with the lstm
            cell), an adaptive softmax without cutoffs.
    """
    softmax = _softmax_kind(options, vocab_size)
    if softmax == "adaptive" and options.cutoffs is None:
        raise ConfigError("the adaptive softmax needs its cutoffs: resolve them from the training ids with "
                          "resolve_softmax(options, train_ids, vocab_size) first")
    arguments = {**dataclasses.asdict(options), "softmax": softmax, "cutoffs": options.cutoffs or ()}
    with option_errors(options):
        return LanguageModel(vocab_size, **arguments, word_order=word_order)
