"""The translation experiment's configuration (:class:`TranslateConfig`), its model section
(:class:`TranslatorOptions`) and model builder (``quasirnn translate``, QRNN §3.3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from quasirnn._checks import check_qrnn_only
from quasirnn.experiments.model_options import ZONEOUT_HELP, RecurrentModelOptions, option_errors, window_help
from quasirnn.models.paper_windows import TRANSLATOR_DECODER_WINDOWS, TRANSLATOR_ENCODER_WINDOWS
from quasirnn.models.translation import TRANSLATION_CELLS, LSTMTranslator, QRNNTranslator
from quasirnn.training.config import Optimisation, RunOptions, TrainingConfig, fixed, inherited, section
from quasirnn.training.options import (DATA, EVAL_BATCH_HELP, EVALUATION, MODEL, OPTIMISATION, positive_int,
                                       probability, window_list)

__all__ = ["KIND", "SRC_LANG", "TEST_SPLIT", "TGT_LANG", "TranslateConfig", "TranslatorOptions",
           "VAL_SPLIT", "build_translator"]

KIND = "translator"
SRC_LANG, TGT_LANG = "de", "en"
VAL_SPLIT, TEST_SPLIT = "val", "test_2016_flickr"


@dataclass
class TranslatorOptions(RecurrentModelOptions):
    """The arguments of the :class:`~quasirnn.models.QRNNTranslator` (or
    :class:`~quasirnn.models.LSTMTranslator`) a ``translate`` run trains (its ``model`` section;
    :func:`build_translator` builds it, and the model checks them).

    The defaults are the paper's model (§3.3): 4 layers of 320 units in the encoder and in the
    decoder, QRNN encoder windows 6 in the first layer and 2 above (``encoder_window=None`` is
    :data:`~quasirnn.models.paper_windows.TRANSLATOR_ENCODER_WINDOWS` for any ``num_layers``),
    decoder windows 2 in the first layer and 1 above; embeddings of 64, dropout 0.2. The LSTM
    (``cell="lstm"``) uses the same sizes and has no windows nor zoneout. A run stores the windows
    its model was built with.

    Example::

        >>> options = TranslatorOptions(num_layers=3)
        >>> model = build_translator(options, 20, 20)
        >>> model.encoder_windows, options.as_built(model).decoder_window
        ((6, 2, 2), [2, 1, 1])
    """

    cell: str = fixed("qrnn", "recurrent layer of the encoder and the decoder (default: {default})",
                      choices=TRANSLATION_CELLS, group=MODEL)
    emb_size: int = fixed(64, "character embedding size (default: {default})", positive_int, group=MODEL)
    hidden_size: int = fixed(320, "units per layer (default: {default})", positive_int, group=MODEL)
    num_layers: int = fixed(4, "layers of the encoder and of the decoder (default: {default})", positive_int,
                            group=MODEL)
    encoder_window: Union[None, int, list[int]] = fixed(None, window_help(TRANSLATOR_ENCODER_WINDOWS,
                                                                          "qrnn encoder convolution width"),
                                                        window_list, group=MODEL)
    decoder_window: Union[None, int, list[int]] = fixed(None, window_help(TRANSLATOR_DECODER_WINDOWS,
                                                                          "qrnn decoder convolution width"),
                                                        window_list, group=MODEL)
    dropout: float = fixed(0.2, "dropout on the embeddings and between layers (default: {default})", probability,
                           group=MODEL)
    zoneout: float = fixed(0.0, ZONEOUT_HELP, probability, group=MODEL)

    window_patterns = {"encoder_window": TRANSLATOR_ENCODER_WINDOWS, "decoder_window": TRANSLATOR_DECODER_WINDOWS}


@dataclass
class TranslateConfig(TrainingConfig):
    """Configuration of a translation run (stored in the checkpoint as :meth:`to_dict`).

    The defaults train the paper's model (§3.3, :class:`TranslatorOptions`) with Adam 2e-3,
    gradient clipping 1 and label smoothing 0.1, batches of 64 sentence pairs, the learning rate
    halved after 3 epochs without a better greedy validation BLEU (``lr_patience=2``), in
    float32. In 90 minutes on one core of the 2-core development machine this QRNN (4.7 M
    parameters, about 5,700 characters/s, 8 epochs) reached test_2016 BLEU 33.7, above the 2×256
    QRNN's 31.1 (26 epochs with ``lr_patience=0``); BENCHMARKS.md has both.

    Raises:
        ConfigError: the checks of the sections.

    Example::

        >>> config = TranslateConfig().replace(num_layers=3).resolved()
        >>> config.model.encoder_window, config.model.decoder_window, config.optim.lr_patience
        ([6, 2, 2], [2, 1, 1], 2)
    """

    data: Optional[str] = inherited(None, f"folder with {{train,val,{TEST_SPLIT}}}.{{de,en}}[.gz] (default: "
                                          "$QUASIRNN_DATA/multi30k, else the user cache's multi30k)", metavar="DIR",
                                    group=DATA)
    max_len: int = fixed(200, "drop training pairs longer than this many characters; also the longest output "
                              "(default: {default})", positive_int, group=DATA)
    limit: Optional[int] = fixed(None, "use only the first N training pairs", positive_int, group=DATA)
    model: TranslatorOptions = section(TranslatorOptions)
    batch_size: int = fixed(64, "sentence pairs per (global) batch (default: {default})", positive_int,
                            group=OPTIMISATION)
    eval_batch_size: int = inherited(200, EVAL_BATCH_HELP, positive_int, group=OPTIMISATION)
    optim: Optimisation = section(Optimisation, lr=2e-3, clip=1.0, lr_patience=2)
    label_smoothing: float = fixed(0.1, "label smoothing of the training cross-entropy (default: {default})",
                                   probability, group=OPTIMISATION)
    val_limit: Optional[int] = inherited(None, "validate on the first N validation pairs only (default: all)",
                                         positive_int, group=EVALUATION)
    final_beam: int = inherited(5, "beam size of the final validation/test translation (default: {default})",
                                positive_int, group=EVALUATION)
    run: RunOptions = section(RunOptions, epochs=100, time_budget=90.0, log_interval=50)

    validation_metric = "validation BLEU"

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint from before ``--lr-patience`` decayed without patience; its int windows meant the first layer."""
        saved.setdefault("lr_patience", 0)
        return super().upgrade(saved)


def build_translator(options: TranslatorOptions, src_vocab: int, tgt_vocab: int) -> torch.nn.Module:
    """The :class:`QRNNTranslator` or :class:`LSTMTranslator` of the model section ``options``
    (its fields are the models' arguments; the LSTM takes neither windows nor zoneout nor backend).

    Raises:
        ConfigError: an unknown cell, zoneout with the LSTM, or what the model refuses, naming the
            option (:func:`~quasirnn.experiments.model_options.option_errors`).
    """
    arguments = dataclasses.asdict(options)
    cell = arguments.pop("cell")
    with option_errors(options):
        if cell == "qrnn":
            return QRNNTranslator(src_vocab, tgt_vocab, **arguments)
        if cell == "lstm":
            check_qrnn_only("zoneout", options.zoneout, cell)
            return LSTMTranslator(src_vocab, tgt_vocab, options.emb_size, options.hidden_size, options.num_layers,
                                  options.dropout)
        raise ValueError(f"cell must be one of {', '.join(TRANSLATION_CELLS)}, got {cell!r}")
