"""Models of the QRNN paper built from quasirnn layers.

- :class:`LanguageModel` — word-level language model (QRNN §3.2, AWD-QRNN/AWD-LSTM form).
- :class:`LockedDropout`, :func:`embedded_dropout` — the AWD-LSTM dropouts.
"""

from quasirnn.models.dropout import LockedDropout, embedded_dropout
from quasirnn.models.language_model import CELLS, LanguageModel, detach_hidden, evaluate

__all__ = ["CELLS", "LanguageModel", "LockedDropout", "detach_hidden", "embedded_dropout", "evaluate"]
