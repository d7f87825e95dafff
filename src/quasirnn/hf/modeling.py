"""The ``transformers`` models of quasirnn: :class:`~quasirnn.models.LanguageModel` (QRNN paper §3.2)
behind ``PreTrainedModel``, so that ``save_pretrained``, ``from_pretrained``, ``generate`` and
``pipeline`` work on it.

The weights are the project's own modules (attribute ``lm``, a
:class:`~quasirnn.models.LanguageModel`), not a re-implementation: the logits are the model's. The
recurrent state (each layer's memory c, last output h and, for a QRNN, its convolution history) is
the generation cache (:class:`QRNNCache`): after the prompt, each new token is one step of every
layer, never a re-run of the prefix; beam search reorders it along the batch. Prompts of
different lengths are padded on the left, each row read from the zero state at its first token.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast, SequenceClassifierOutput

from quasirnn.hf.configuration import QRNNConfig
from quasirnn.models import LanguageModel, TextClassifier

__all__ = ["QRNNCache", "QRNNForCausalLM", "QRNNForSequenceClassification", "QRNNModel", "QRNNPreTrainedModel"]


def _map_tensors(state: Any, fn) -> Any:
    """``state`` (nested tuples of tensors and None) with ``fn`` applied to every tensor."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    return tuple(_map_tensors(s, fn) for s in state)


def _merge_rows(parts: list[tuple[Tensor, Any]], batch: int) -> Any:
    """One state of ``batch`` sequences from the states of groups of them: ``parts`` holds (rows
    (b_g,) long, a state of those b_g sequences: nested tuples of tensors with the batch on
    dimension 1, and None), every group of the same structure."""
    first = parts[0][1]
    if first is None:
        return None
    if isinstance(first, Tensor):
        merged = first.new_empty((first.size(0), batch, *first.shape[2:]))
        for rows, t in parts:
            merged.index_copy_(1, rows, t)
        return merged
    return tuple(_merge_rows([(rows, state[i]) for rows, state in parts], batch) for i in range(len(first)))


class QRNNCache:
    """The generation cache of a quasirnn model: its recurrent state after the tokens read so far.

    Holds the :class:`~quasirnn.models.LanguageModel` state (a tuple of L per-layer states, every
    tensor with the batch B on dimension 1) and the number of tokens read. ``generate`` passes it
    back to the model with the next token only (:meth:`QRNNForCausalLM.prepare_inputs_for_generation`)
    and, in beam search, calls :meth:`reorder_cache` with the beams kept.

    Example::

        >>> model = QRNNForCausalLM(QRNNConfig(vocab_size=20, emb_size=4, hidden_size=8, num_layers=2)).eval()
        >>> cache = model(torch.tensor([[1, 2, 3], [4, 5, 6]])).cache
        >>> cache.get_seq_length(), cache.batch_size
        (3, 2)
        >>> cache.reorder_cache(torch.tensor([1, 1]))
        >>> cache.batch_size
        2
    """

    is_compileable = False  # generate() compiles the forward only with a static-shape cache

    def __init__(self, model: LanguageModel, states: Any, seq_length: int) -> None:
        self._model = model
        self.states = states
        self.seq_length = seq_length

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """The number of tokens read into the state."""
        return self.seq_length

    @property
    def batch_size(self) -> int:
        """B, the number of sequences the state holds."""
        sizes: list[int] = []
        _map_tensors(self._model.pack_hidden(self.states), lambda t: sizes.append(t.size(1)))
        return sizes[0]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keeps, in place, sequence ``beam_idx[b]`` of the state as sequence b (B' = ``len(beam_idx)``)."""
        packed = self._model.pack_hidden(self.states)
        self.states = self._model.unpack_hidden(
            _map_tensors(packed, lambda t: t.index_select(1, beam_idx.to(t.device))))


class QRNNPreTrainedModel(PreTrainedModel):
    """The ``PreTrainedModel`` base of the quasirnn models: configuration :class:`QRNNConfig`, weights
    the project's modules, initialised by their own rules (AWD-LSTM's), not ``transformers``'.

    ``from_pretrained`` raises, in one line, on a folder whose weights do not cover the model.
    """

    config: QRNNConfig
    config_class = QRNNConfig
    base_model_prefix = "lm"
    main_input_name = "input_ids"

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Nothing: the modules of :class:`~quasirnn.models.LanguageModel` initialise themselves."""

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the cache is the recurrent state (QRNNCache), not keys and values

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """``PreTrainedModel.from_pretrained``, refusing weights that do not cover the model.

        Raises:
            OSError: no folder or no weights there (``transformers``' message).
            ValueError: weights missing from the folder's file, or a ``config.json`` of a later
                quasirnn (:class:`QRNNConfig`), in one line.
        """
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        missing = sorted(set(info["missing_keys"]) - set(model.all_tied_weights_keys))
        if missing:
            raise ValueError(f"{args[0] if args else kwargs.get('pretrained_model_name_or_path')}: the weights lack "
                             f"{len(missing)} of the model's tensors ({', '.join(missing[:3])}"
                             f"{', ...' if len(missing) > 3 else ''}): the folder is incomplete or of another model")
        return (model, info) if want_info else model


class _LanguageModelBase(QRNNPreTrainedModel):
    """A :class:`~quasirnn.models.LanguageModel` (``lm``) built from the configuration, its tied weights declared."""

    def __init__(self, config: QRNNConfig) -> None:
        super().__init__(config)
        self.lm = LanguageModel(**config.model_arguments())
        if config.tie_word_embeddings:
            target = "lm.softmax.weight" if config.softmax == "adaptive" else "lm.decoder.weight"
            self._tied_weights_keys = {target: "lm.encoder.weight"}
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.lm.encoder

    def _features(self, input_ids: Tensor, attention_mask: Optional[Tensor], cache: Optional[QRNNCache],
                  use_cache: Optional[bool]) -> tuple[Tensor, Optional[QRNNCache]]:
        """The last layer's outputs (B, T, E_out), after the (eval-mode: no-op) output dropout, and
        the cache of the state after them (None without ``use_cache``)."""
        if input_ids is None or input_ids.dim() != 2:
            raise ValueError(f"input_ids must be a LongTensor (B, T), got "
                             f"{None if input_ids is None else tuple(input_ids.shape)}")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if attention_mask is not None and not bool(attention_mask.all()):
            x, states = self._left_padded_features(input_ids, attention_mask, cache)
        else:
            _, x, states = self.lm.features(input_ids.t(), None if cache is None else cache.states)  # (T, B, E_out)
            x = x.transpose(0, 1)
        if not use_cache:
            return x, None
        seen = input_ids.size(1) + (0 if cache is None else cache.seq_length)
        return x, QRNNCache(self.lm, states, seen)

    def _left_padded_features(self, input_ids: Tensor, attention_mask: Tensor,
                              cache: Optional[QRNNCache]) -> tuple[Tensor, Any]:
        """:meth:`_features` (B, T, E_out) and state of a left-padded prompt: each row's tokens read
        from the zero state (the rows of equal padding together), as if alone and unpadded; zeros at
        the padding positions."""
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(attention_mask.shape)}")
        if cache is not None:
            raise ValueError("padding is for a prompt read from the start: with a cache, pass no attention_mask "
                             "(or one of all ones)")
        batch, length = input_ids.shape
        real = attention_mask.to(torch.bool)
        pads = length - real.sum(1)
        if not torch.equal(real, torch.arange(length, device=real.device) >= pads[:, None]):
            raise ValueError("quasirnn models take left padding only (tokenizer.padding_side = 'left'): each row of "
                             "attention_mask must be zeros, then ones")
        if bool((pads == length).any()):
            raise ValueError(f"every row needs a token: row {int((pads == length).nonzero()[0])} of attention_mask "
                             "is all padding")
        x, parts = None, []
        for p in pads.unique().tolist():
            rows = (pads == p).nonzero().squeeze(1)
            _, rows_x, states = self.lm.features(input_ids[rows, p:].t(), None)  # (T - p, b, E_out)
            if x is None:
                x = rows_x.new_zeros((batch, length, rows_x.size(-1)))
            x[rows, p:] = rows_x.transpose(0, 1)
            parts.append((rows, self.lm.pack_hidden(states)))
        return x, self.lm.unpack_hidden(_merge_rows(parts, batch))


class QRNNModel(_LanguageModelBase):
    """The language model's last-layer outputs (``AutoModel``): (B, T, E_out) features, before the softmax.

    Example::

        >>> model = QRNNModel(QRNNConfig(vocab_size=20, emb_size=4, hidden_size=8, num_layers=2)).eval()
        >>> model(torch.tensor([[1, 2, 3]])).last_hidden_state.shape
        torch.Size([1, 3, 4])
    """

    def forward(self, input_ids: Optional[Tensor] = None, attention_mask: Optional[Tensor] = None,
                cache: Optional[QRNNCache] = None, use_cache: Optional[bool] = None, **kwargs: Any
                ) -> BaseModelOutputWithPast:
        """Args: input_ids LongTensor (B, T); attention_mask: None or left padding (as
        :meth:`QRNNForCausalLM.forward`'s); cache: the state of the tokens before (None: zero state).

        Returns:
            ``last_hidden_state`` (B, T, E_out) and ``cache`` (:class:`QRNNCache`).

        Raises:
            ValueError: input_ids not 2-D; an attention mask of another shape, not left padding, with
                a cache, or with a row of padding only.
        """
        x, cache = self._features(input_ids, attention_mask, cache, use_cache)
        return BaseModelOutputWithPast(last_hidden_state=x, cache=cache)


class QRNNForCausalLM(_LanguageModelBase, GenerationMixin):
    """A quasirnn :class:`~quasirnn.models.LanguageModel` as a ``transformers`` causal LM: logits,
    loss, ``generate`` (greedy, sampling, beam search) with the recurrent state as the cache.

    The logits (B, T, V) are the project model's scores: a full softmax's logits, or an adaptive
    softmax's normalised log-probabilities (both give ``generate`` the same distribution).

    Example::

        >>> config = QRNNConfig(vocab_size=20, emb_size=4, hidden_size=8, num_layers=2, window=2)
        >>> model = QRNNForCausalLM(config).eval()
        >>> model(torch.tensor([[1, 2, 3]])).logits.shape
        torch.Size([1, 3, 20])
        >>> model.generate(torch.tensor([[1, 2]]), max_new_tokens=4, do_sample=False).shape
        torch.Size([1, 6])
    """

    @classmethod
    def from_language_model(cls, lm: LanguageModel, **config: Any) -> "QRNNForCausalLM":
        """A model holding a copy of ``lm``'s weights (and its configuration) in ``lm``'s dtype, in eval mode.

        ``config`` adds fields to the :class:`QRNNConfig` (e.g. ``eos_token_id``).

        Example::

            >>> lm = LanguageModel(20, 4, 8, num_layers=2, cell="sru", softmax="adaptive", cutoffs=[5])
            >>> model = QRNNForCausalLM.from_language_model(lm)
            >>> ids = torch.tensor([[1, 2, 3]])
            >>> torch.equal(model(ids).logits, lm.eval()(ids.t())[0].transpose(0, 1))
            True
        """
        adaptive = lm.softmax_kind == "adaptive"
        hf_config = QRNNConfig(
            vocab_size=lm.vocab_size, emb_size=lm.emb_size, hidden_size=lm.hidden_size, num_layers=lm.num_layers,
            cell=lm.cell, window=None if lm.windows is None else list(lm.windows), zoneout=lm.zoneout,
            dropout=lm.lockdrop_out.p, dropouth=lm.lockdrop_h.p, dropouti=lm.lockdrop_in.p, dropoute=lm.dropoute,
            wdrop=lm.wdrop, tie_word_embeddings=lm.tie_weights, softmax=lm.softmax_kind,
            cutoffs=list(lm.softmax.cutoffs) if adaptive else [], backend=lm.backend, **config)
        model = cls(hf_config).to(lm.encoder.weight.dtype)
        model.lm.load_state_dict(lm.state_dict())
        return model.to(lm.encoder.weight.device).eval()

    def prepare_inputs_for_generation(self, input_ids: Tensor, cache: Optional[QRNNCache] = None,
                                      attention_mask: Optional[Tensor] = None, use_cache: Optional[bool] = None,
                                      **kwargs: Any) -> dict:
        """The whole prompt first, then (with a cache) only the tokens the cache has not read."""
        if cache is not None:
            input_ids = input_ids[:, cache.seq_length:]
            attention_mask = None  # the new tokens are never padding
        return {"input_ids": input_ids, "cache": cache, "attention_mask": attention_mask, "use_cache": use_cache,
                "logits_to_keep": kwargs.get("logits_to_keep", 0)}

    def forward(self, input_ids: Optional[Tensor] = None, attention_mask: Optional[Tensor] = None,
                cache: Optional[QRNNCache] = None, labels: Optional[Tensor] = None,
                use_cache: Optional[bool] = None, logits_to_keep: Union[int, Tensor] = 0, **kwargs: Any
                ) -> CausalLMOutputWithPast:
        """Next-token scores for every position of ``input_ids`` after the state in ``cache``.

        Args:
            input_ids: LongTensor (B, T) of token ids in [0, V).
            attention_mask: None, or (B, T) of zeros then ones: left padding (``tokenizer.padding_side
                = "left"``), of a prompt read from the start (no ``cache``). Each row is read as if
                alone and unpadded, and the cache holds each row's state after its own tokens; the
                scores at padding positions are those of zero features (label them -100).
            cache: the :class:`QRNNCache` of the tokens before; None: the zero state.
            labels: None or LongTensor (B, T), ``input_ids`` usually: the loss is the mean NLL (nats)
                of ``labels[:, 1:]`` given the positions before (-100 ignored), as ``transformers``' LMs.
            use_cache: return the :class:`QRNNCache` (default: ``config.use_cache``).
            logits_to_keep: int k > 0: the scores of the last k positions only (``generate``'s 1).

        Returns:
            ``CausalLMOutputWithPast``: ``logits`` (B, T or k, V) float32, ``loss`` with labels, ``cache``.

        Raises:
            ValueError: input_ids not 2-D; an attention mask of another shape, not left padding, with
                a cache, or with a row of padding only.
        """
        x, cache = self._features(input_ids, attention_mask, cache, use_cache)
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            x = x[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, Tensor):
            x = x[:, logits_to_keep]
        logits = self.lm.decode(x).float()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache)


class QRNNForSequenceClassification(QRNNPreTrainedModel):
    """A quasirnn :class:`~quasirnn.models.TextClassifier` (QRNN §3.1: embedding, dense QRNN/SRU/LSTM
    stack, pooling over each text's real steps, linear) as a ``transformers`` sequence classifier.

    Texts are right-padded (``attention_mask`` gives each one's length; the stack is causal, so the
    padding never changes a text's logits) and read up to ``config.max_len`` tokens.

    Example::

        >>> config = QRNNConfig(vocab_size=30, emb_size=4, hidden_size=6, num_layers=2, num_labels=2)
        >>> model = QRNNForSequenceClassification(config).eval()
        >>> out = model(torch.tensor([[5, 6, 7], [8, 9, 0]]), attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]))
        >>> out.logits.shape
        torch.Size([2, 2])
    """

    def __init__(self, config: QRNNConfig) -> None:
        super().__init__(config)
        self.classifier = TextClassifier(**config.classifier_arguments())
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.classifier.embedding

    def forward(self, input_ids: Optional[Tensor] = None, attention_mask: Optional[Tensor] = None,
                labels: Optional[Tensor] = None, **kwargs: Any) -> SequenceClassifierOutput:
        """Class logits of right-padded texts.

        Args:
            input_ids: LongTensor (B, T) of token ids (id 0 is padding).
            attention_mask: None (every position real) or (B, T) ones then zeros (right padding).
            labels: None or LongTensor (B,) of classes: the loss is their mean cross-entropy.

        Returns:
            ``SequenceClassifierOutput``: ``logits`` (B, C) float32, ``loss`` with labels.

        Raises:
            ValueError: input_ids not 2-D, or a text without a token.
        """
        if input_ids is None or input_ids.dim() != 2:
            raise ValueError(f"input_ids must be a LongTensor (B, T), got "
                             f"{None if input_ids is None else tuple(input_ids.shape)}")
        if self.config.max_len is not None:
            input_ids = input_ids[:, :self.config.max_len]
            attention_mask = None if attention_mask is None else attention_mask[:, :self.config.max_len]
        lengths = (torch.full((input_ids.size(0),), input_ids.size(1), dtype=torch.long) if attention_mask is None
                   else attention_mask.sum(1).long())
        if input_ids.size(1) == 0 or bool((lengths == 0).any()):
            raise ValueError("every text needs at least one token")
        logits = self.classifier(input_ids.t(), lengths.cpu()).float()
        loss = None if labels is None else F.cross_entropy(logits, labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)
