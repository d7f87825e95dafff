"""Hugging Face ``transformers`` models of quasirnn (``pip install "quasirnn[hf]"``).

Importing this module registers the models with the Auto classes: ``AutoConfig`` (``model_type``
"qrnn": :class:`QRNNConfig`), ``AutoModel`` (:class:`QRNNModel`), ``AutoModelForCausalLM``
(:class:`QRNNForCausalLM`) and ``AutoModelForSequenceClassification``
(:class:`QRNNForSequenceClassification`), so that ``from_pretrained(DIR)`` and ``pipeline("text-generation",
model=DIR)`` or ``pipeline("text-classification", model=DIR)`` load a folder written by
``save_pretrained`` or by ``quasirnn lm export`` / ``quasirnn classify export --checkpoint RUN --hf DIR``.
``import quasirnn`` does not import ``transformers``; only this module does.

Example::

    >>> import tempfile, torch, quasirnn.hf
    >>> from transformers import AutoModelForCausalLM
    >>> model = quasirnn.hf.QRNNForCausalLM(quasirnn.hf.QRNNConfig(vocab_size=20, emb_size=4, hidden_size=8,
    ...                                                           num_layers=2)).eval()
    >>> folder = tempfile.mkdtemp()
    >>> model.save_pretrained(folder)
    >>> loaded = AutoModelForCausalLM.from_pretrained(folder)
    >>> ids = torch.tensor([[1, 2, 3]])
    >>> torch.equal(loaded(ids).logits, model(ids).logits)
    True
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from quasirnn.hf.configuration import FORMAT_VERSION, QRNNConfig
from quasirnn.hf.modeling import (QRNNCache, QRNNForCausalLM, QRNNForSequenceClassification, QRNNModel,
                                  QRNNPreTrainedModel)

__all__ = ["FORMAT_VERSION", "QRNNCache", "QRNNConfig", "QRNNForCausalLM", "QRNNForSequenceClassification",
           "QRNNModel", "QRNNPreTrainedModel"]

AutoConfig.register(QRNNConfig.model_type, QRNNConfig, exist_ok=True)
AutoModel.register(QRNNConfig, QRNNModel, exist_ok=True)
AutoModelForCausalLM.register(QRNNConfig, QRNNForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(QRNNConfig, QRNNForSequenceClassification, exist_ok=True)
