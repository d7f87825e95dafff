"""``QRNNConfig``: the ``transformers`` configuration of a quasirnn model (``model_type`` "qrnn").

Its fields are the arguments of :class:`quasirnn.models.LanguageModel` (the QRNN paper's §3.2
language model; cell ``"qrnn"``, ``"sru"`` or ``"lstm"``) and of
:class:`quasirnn.models.TextClassifier` (§3.1), under their own names, except
``tie_word_embeddings``, ``transformers``' name for the language model's ``tie_weights``, and
``num_labels``/``id2label``, the classifier's ``num_classes``. The models check them when they are
built (:mod:`quasirnn.hf.modeling`).
"""

from __future__ import annotations

from typing import Optional, Union

from transformers import PreTrainedConfig

__all__ = ["FORMAT_VERSION", "QRNNConfig"]

#: The version of the folder format this quasirnn writes (``config.json``'s ``quasirnn_format``); a
#: folder of a later version is refused when loaded, in one line.
FORMAT_VERSION = 1


class QRNNConfig(PreTrainedConfig):
    """Configuration of :class:`~quasirnn.hf.QRNNForCausalLM`: the arguments of a
    :class:`~quasirnn.models.LanguageModel` (same names and meanings; see its docstring).

    Args:
        vocab_size: V, the number of word types.
        emb_size: E, the embedding size.
        hidden_size: H, the size of every layer but the last (which has E when tied).
        num_layers: L, the number of recurrent layers.
        cell: ``"qrnn"``, ``"sru"`` or ``"lstm"``.
        window: the QRNN convolution widths: an int, a list of L ints, or None (AWD-QRNN's).
        zoneout, dropout, dropouth, dropouti, dropoute, wdrop: the training regularisers
            (inactive in eval mode, hence in ``generate``).
        tie_word_embeddings: the decoder shares the embedding matrix (``tie_weights``).
        softmax: ``"full"`` or ``"adaptive"``; cutoffs: the adaptive softmax's cluster bounds.
        backend: the QRNN/SRU recurrence kernel (``"auto"``, ``"torch"``, ...).
        dense, pooling: the classifier's densely connected layers and its pooling over time
            (``"mean"`` or ``"last"``); max_len: the classifier reads the first ``max_len``
            tokens of a text (None: all), as ``classify predict`` does.
        quasirnn_format: the folder format's version (:data:`FORMAT_VERSION`).

    Raises:
        ValueError: ``quasirnn_format`` newer than this quasirnn's (a folder written by a later
            version), in one line.

    Example::

        >>> config = QRNNConfig(vocab_size=50, emb_size=8, hidden_size=16, num_layers=2)
        >>> config.model_type, config.cell, config.tie_word_embeddings
        ('qrnn', 'qrnn', True)
    """

    model_type = "qrnn"

    vocab_size: int = 10000
    emb_size: int = 400
    hidden_size: int = 1550
    num_layers: int = 4
    cell: str = "qrnn"
    window: Union[None, int, list[int]] = None
    zoneout: float = 0.0
    dropout: float = 0.4
    dropouth: float = 0.3
    dropouti: float = 0.4
    dropoute: float = 0.1
    wdrop: float = 0.0
    tie_word_embeddings: bool = True
    softmax: str = "full"
    cutoffs: list[int] = ()
    backend: str = "auto"
    dense: bool = True
    pooling: str = "mean"
    max_len: Optional[int] = None
    use_cache: bool = True
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    quasirnn_format: int = FORMAT_VERSION

    def __post_init__(self, **kwargs):
        if self.quasirnn_format > FORMAT_VERSION:
            raise ValueError(f"this folder was written by a later quasirnn (format {self.quasirnn_format}; this "
                             f"quasirnn reads up to {FORMAT_VERSION}): upgrade quasirnn to load it")
        self.cutoffs = list(self.cutoffs)
        super().__post_init__(**kwargs)

    def model_arguments(self) -> dict:
        """The keyword arguments of :class:`~quasirnn.models.LanguageModel` this configuration holds."""
        return dict(vocab_size=self.vocab_size, emb_size=self.emb_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, cell=self.cell, window=self.window, zoneout=self.zoneout,
                    dropout=self.dropout, dropouth=self.dropouth, dropouti=self.dropouti, dropoute=self.dropoute,
                    wdrop=self.wdrop, tie_weights=self.tie_word_embeddings, softmax=self.softmax,
                    cutoffs=tuple(self.cutoffs), backend=self.backend)

    def classifier_arguments(self) -> dict:
        """The keyword arguments of :class:`~quasirnn.models.TextClassifier` this configuration holds."""
        return dict(vocab_size=self.vocab_size, emb_size=self.emb_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, num_classes=self.num_labels, cell=self.cell, window=self.window,
                    dense=self.dense, pooling=self.pooling, zoneout=self.zoneout, dropout=self.dropout,
                    dropouth=self.dropouth, dropouti=self.dropouti, dropoute=self.dropoute, backend=self.backend)
