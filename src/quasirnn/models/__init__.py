"""Models of the QRNN paper built from quasirnn layers.

- :class:`LanguageModel` — word-level language model (QRNN §3.2, AWD-QRNN/AWD-LSTM form), with a full or
  an adaptive softmax (:class:`AdaptiveSoftmax`, :func:`default_cutoffs`).
- :class:`TextClassifier` — document classifier with a dense QRNN or LSTM (QRNN §3.1, IMDb).
- :class:`QRNNTranslator`, :class:`LSTMTranslator` — character-level encoder–decoders with
  attention (QRNN §2.1, §3.3), decoded by :func:`greedy_decode` or :func:`beam_search`.
- :class:`LockedDropout`, :func:`embedded_dropout`, :func:`weight_drop` — the AWD-LSTM dropouts.
"""

from quasirnn.models.classifier import DenseLSTM, TextClassifier, masked_pool
from quasirnn.models.dropout import LockedDropout, embedded_dropout, weight_drop
from quasirnn.models.decoding import beam_search, greedy_decode
from quasirnn.models.language_model import CELLS, SOFTMAXES, LanguageModel, detach_hidden
from quasirnn.models.softmax import AdaptiveSoftmax, default_cutoffs
from quasirnn.models.translation import LSTMTranslator, QRNNTranslator

__all__ = [
    "AdaptiveSoftmax",
    "CELLS",
    "SOFTMAXES",
    "DenseLSTM",
    "LanguageModel",
    "LSTMTranslator",
    "LockedDropout",
    "QRNNTranslator",
    "TextClassifier",
    "beam_search",
    "default_cutoffs",
    "detach_hidden",
    "embedded_dropout",
    "greedy_decode",
    "masked_pool",
    "weight_drop",
]
