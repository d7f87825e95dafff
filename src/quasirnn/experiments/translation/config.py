"""The translation experiment's configuration (:class:`TranslateConfig`) and model builder (``quasirnn translate``, QRNN §3.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from quasirnn.errors import ConfigError, value_errors_as_config_errors
from quasirnn.experiments.windows import EVAL_BATCH_HELP, ZONEOUT_HELP, WindowedConfig
from quasirnn.models.presets import TRANSLATOR_DECODER_WINDOWS, TRANSLATOR_ENCODER_WINDOWS
from quasirnn.models.translation import TRANSLATION_CELLS, LSTMTranslator, QRNNTranslator
from quasirnn.training.config import Optimisation, RunOptions, fixed, inherited, section
from quasirnn.training.options import DATA, EVALUATION, MODEL, OPTIMISATION, positive_int, probability, window_list

__all__ = ["KIND", "SRC_LANG", "TEST_SPLIT", "TGT_LANG", "TranslateConfig",
           "VAL_SPLIT", "build_translator"]

KIND = "translator"
SRC_LANG, TGT_LANG = "de", "en"
VAL_SPLIT, TEST_SPLIT = "val", "test_2016_flickr"


@dataclass
class TranslateConfig(WindowedConfig):
    """Configuration of a translation run (stored in the checkpoint as :meth:`to_dict`).

    The defaults are the paper's model (§3.3): 4 layers of 320 units in the encoder and in the
    decoder, QRNN encoder windows 6 in the first layer and 2 above (``encoder_window=None``
    resolves to that pattern for any ``num_layers``), decoder windows 2 in the first layer and 1
    above; embeddings of 64, dropout 0.2, Adam 2e-3 with gradient clipping 1 and label
    smoothing 0.1, batches of 64 sentence pairs, the learning rate halved after 3 epochs
    without a better greedy validation BLEU (``lr_patience=2``). In 90 minutes on one core of
    the 2-core development machine this QRNN (4.7 M parameters, about 5,700 characters/s, 8
    epochs) reached test_2016 BLEU 33.7, above the 2×256 QRNN's 31.1 (26 epochs with
    ``lr_patience=0``); BENCHMARKS.md has both. The LSTM (``--cell lstm``) uses the same sizes.

    Raises:
        ConfigError: zoneout without the qrnn cell, a window list of the wrong length, the
            checks of the sections.

    Example::

        >>> config = TranslateConfig(num_layers=3).resolved()
        >>> config.encoder_window, config.decoder_window, config.optim.lr_patience
        ([6, 2, 2], [2, 1, 1], 2)
    """

    data: Optional[str] = inherited(None, f"folder with {{train,val,{TEST_SPLIT}}}.{{de,en}}[.gz] (default: "
                                          "$QUASIRNN_DATA/multi30k, else the user cache's multi30k)", metavar="DIR",
                                    group=DATA)
    max_len: int = fixed(200, "drop training pairs longer than this many characters; also the longest output "
                              "(default: {default})", positive_int, group=DATA)
    limit: Optional[int] = fixed(None, "use only the first N training pairs", positive_int, group=DATA)
    cell: str = fixed("qrnn", "recurrent layer of the encoder and the decoder (default: {default})",
                      choices=TRANSLATION_CELLS, group=MODEL)
    emb_size: int = fixed(64, "character embedding size (default: {default})", positive_int, group=MODEL)
    hidden_size: int = fixed(320, "units per layer (default: {default})", positive_int, group=MODEL)
    num_layers: int = fixed(4, "layers of the encoder and of the decoder (default: {default})", positive_int,
                            group=MODEL)
    encoder_window: Union[None, int, list[int]] = fixed(None, "qrnn encoder convolution width of every layer, or a "
                                                              "comma list with one per layer (default: {default})",
                                                        window_list, group=MODEL)
    decoder_window: Union[None, int, list[int]] = fixed(None, "the same for the decoder (default: {default})",
                                                        window_list, group=MODEL)
    dropout: float = fixed(0.2, "dropout on the embeddings and between layers (default: {default})", probability,
                           group=MODEL)
    zoneout: float = fixed(0.0, ZONEOUT_HELP, probability, group=MODEL)
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

    window_presets = {"encoder_window": TRANSLATOR_ENCODER_WINDOWS, "decoder_window": TRANSLATOR_DECODER_WINDOWS}
    validation_metric = "validation BLEU"

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint from before ``--lr-patience`` decayed without patience; its int windows meant the first layer."""
        saved.setdefault("lr_patience", 0)
        return super().upgrade(saved)


def build_translator(config: TranslateConfig, src_vocab: int, tgt_vocab: int) -> torch.nn.Module:
    """The :class:`QRNNTranslator` or :class:`LSTMTranslator` that ``config`` describes.

    Raises:
        ConfigError: an unknown cell or invalid sizes.
    """
    common = dict(emb_size=config.emb_size, hidden_size=config.hidden_size, num_layers=config.num_layers,
                  dropout=config.dropout)
    with value_errors_as_config_errors():
        if config.cell == "qrnn":
            return QRNNTranslator(src_vocab, tgt_vocab, encoder_window=config.encoder_window,
                                  decoder_window=config.decoder_window, zoneout=config.zoneout, **common)
        if config.cell == "lstm":
            return LSTMTranslator(src_vocab, tgt_vocab, **common)
    raise ConfigError(f"cell must be one of {', '.join(TRANSLATION_CELLS)}, got {config.cell!r}")
