"""Models of the QRNN paper built from quasirnn layers.

- :class:`LanguageModel` — word-level language model (QRNN §3.2, AWD-QRNN/AWD-LSTM form).
- :class:`TextClassifier` — document classifier with a dense QRNN or LSTM (QRNN §3.1, IMDb).
- :class:`LockedDropout`, :func:`embedded_dropout` — the AWD-LSTM dropouts.
"""

from quasirnn.models.classifier import DenseLSTM, TextClassifier, evaluate_classifier, masked_pool
from quasirnn.models.dropout import LockedDropout, embedded_dropout
from quasirnn.models.language_model import CELLS, LanguageModel, detach_hidden, evaluate

__all__ = [
    "CELLS",
    "DenseLSTM",
    "LanguageModel",
    "LockedDropout",
    "TextClassifier",
    "detach_hidden",
    "embedded_dropout",
    "evaluate",
    "evaluate_classifier",
    "masked_pool",
]
